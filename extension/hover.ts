/**
 * Hover an image path in any text document (CSV, JSON, Markdown, code): the image beside its
 * anomaly map and NFA segmentation, with the score. Paths may be absolute, relative to the
 * document, or relative to a workspace folder.
 */
import { dirname, isAbsolute, join } from 'node:path';
import * as vscode from 'vscode';
import type { Prediction } from '../server/protocol.js';
import { errorMessage, isCancellation } from './daemon.js';
import type { Predictions } from './predictions.js';
import { hoverImages } from './png.js';
import { exists, fileDataUri } from './runs.js';

const EXT = '(?:png|jpe?g|bmp|tiff?)';
const QUOTED = new RegExp(`(["'\`])((?:(?!\\1).)+?\\.${EXT})\\1`, 'gi');
const BARE = new RegExp(`(?:file://)?(?:[A-Za-z]:)?[^\\s"'\`<>()\\[\\]{},;|*?=]+\\.${EXT}(?![\\w.])`, 'gi');

/** The image path under `character` in `line`, with its range. */
export function imagePathAt(line: string, character: number): { text: string; start: number; end: number } | undefined {
  for (const re of [QUOTED, BARE]) {
    re.lastIndex = 0;
    for (let m = re.exec(line); m; m = re.exec(line)) {
      const text = re === QUOTED ? m[2]! : m[0];
      const start = re === QUOTED ? m.index + 1 : m.index;
      const end = start + text.length;
      if (character >= start && character <= end) return { text, start, end };
    }
  }
  return undefined;
}

export async function resolveImagePath(text: string, document: vscode.Uri | undefined): Promise<string | undefined> {
  let p = text.trim();
  if (p.startsWith('file://')) p = vscode.Uri.parse(p).fsPath;
  const candidates: string[] = [];
  if (isAbsolute(p)) candidates.push(p);
  else {
    if (document?.scheme === 'file') candidates.push(join(dirname(document.fsPath), p));
    for (const f of vscode.workspace.workspaceFolders ?? []) candidates.push(join(f.uri.fsPath, p));
  }
  for (const c of candidates) if (await exists(c)) return c;
  return undefined;
}

export function predictionMarkdown(p: Prediction, original: string | undefined): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.supportHtml = true;
  md.appendMarkdown(
    `**U-Flow** anomaly score **${p.score.toFixed(3)}** · max −log NFA **${p.maxNegLogNfa.toFixed(2)}**${p.maxNegLogNfa > 0 ? ' · $(warning) anomalous (log NFA < 0)' : ' · $(pass) normal'}\n\n`,
  );
  md.appendMarkdown(
    `${hoverImages([
      { src: original, alt: 'image', optional: true },
      { src: p.anomalyMapPng, alt: 'anomaly map' },
      { src: p.segmentationPng, alt: 'NFA segmentation', optional: true },
    ])}\n\n`,
  );
  md.appendMarkdown(`<span>${original ? 'image · ' : ''}anomaly map · NFA segmentation (log NFA < 0) — run \`${p.runId}\`</span>`);
  return md;
}

export class ImagePathHoverProvider implements vscode.HoverProvider {
  constructor(private readonly predictions: Predictions) {}

  async provideHover(document: vscode.TextDocument, position: vscode.Position, token: vscode.CancellationToken): Promise<vscode.Hover | undefined> {
    if (!vscode.workspace.getConfiguration('uflow').get<boolean>('hover.enabled', true)) return undefined;
    const line = document.lineAt(position.line).text;
    if (line.length > 10_000) return undefined;
    const found = imagePathAt(line, position.character);
    if (!found) return undefined;
    const path = await resolveImagePath(found.text, document.uri);
    if (!path || token.isCancellationRequested) return undefined;
    const range = new vscode.Range(position.line, found.start, position.line, found.end);
    try {
      const [p, original] = await Promise.all([this.predictions.predict(path, {}, token), fileDataUri(path, 64 * 1024 * 1024)]);
      return new vscode.Hover(predictionMarkdown(p, original), range);
    } catch (e) {
      if (isCancellation(e) || token.isCancellationRequested) return undefined;
      const md = new vscode.MarkdownString(`**U-Flow**: no anomaly map for \`${found.text}\`: ${errorMessage(e)}`);
      return new vscode.Hover(md, range);
    }
  }
}
