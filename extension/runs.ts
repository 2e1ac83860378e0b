/** Runs of the workspace (from uflow/runs), pickers, and small file helpers. */
import { extname, join } from 'node:path';
import * as vscode from 'vscode';
import { Methods, type Evaluation, type RunInfo } from '../server/protocol.js';
import type { Daemon } from './daemon.js';
import { metricText } from './statusBar.js';

export async function listRuns(daemon: Daemon, token?: vscode.CancellationToken): Promise<RunInfo[]> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  const all: RunInfo[] = [];
  if (!folders.length) return all;
  const results = await Promise.all(
    folders.map((f) => daemon.request<RunInfo[] | { runs: RunInfo[] }>(Methods.runs, { workspace: f.uri.fsPath }, token).catch(() => [] as RunInfo[])),
  );
  for (const r of results) all.push(...(Array.isArray(r) ? r : (r?.runs ?? [])));
  const seen = new Set<string>();
  return all
    .filter((r) => (seen.has(r.dir) ? false : (seen.add(r.dir), true)))
    .sort((a, b) => (b.createdAt ?? '').localeCompare(a.createdAt ?? '') || b.runId.localeCompare(a.runId));
}

export async function findRun(daemon: Daemon, runId: string, token?: vscode.CancellationToken): Promise<RunInfo | undefined> {
  return (await listRuns(daemon, token)).find((r) => r.runId === runId);
}

export function runLabel(r: RunInfo): string {
  return `${r.category} · ${r.model}`;
}

export function runDescription(r: RunInfo): string {
  const parts: string[] = [r.state];
  if (r.epochsDone !== undefined) parts.push(`${r.epochsDone}/${r.config?.trainer?.epochs ?? '?'} epochs`);
  const m = metricText(r.best ?? {});
  if (m) parts.push(m);
  return parts.join(' · ');
}

/**
 * Asks for a run (newest first, the newest preselected). `filter` narrows the list; with one
 * candidate it is taken without asking.
 */
export async function pickRun(
  daemon: Daemon,
  opts: { title: string; filter?: (r: RunInfo) => boolean; empty: string },
  token?: vscode.CancellationToken,
): Promise<RunInfo | undefined> {
  const runs = (await listRuns(daemon, token)).filter(opts.filter ?? (() => true));
  if (!runs.length) {
    void vscode.window.showInformationMessage(opts.empty);
    return undefined;
  }
  if (runs.length === 1) return runs[0];
  const items = runs.map((r, i) => ({
    label: `${i === 0 ? '$(star-full) ' : ''}${runLabel(r)}`,
    description: runDescription(r),
    detail: `${r.runId} — ${new Date(r.createdAt).toLocaleString()}`,
    run: r,
  }));
  const picked = await vscode.window.showQuickPick(items, { title: opts.title, placeHolder: 'Newest first; Enter takes the newest', matchOnDetail: true }, token);
  return picked?.run;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(vscode.Uri.file(path));
    return true;
  } catch {
    return false;
  }
}

export async function readEvaluation(run: RunInfo): Promise<Evaluation | undefined> {
  try {
    const bytes = await vscode.workspace.fs.readFile(vscode.Uri.file(join(run.dir, 'evaluation.json')));
    return JSON.parse(new TextDecoder().decode(bytes)) as Evaluation;
  } catch {
    return undefined;
  }
}

export const IMAGE_EXTENSIONS = ['png', 'jpg', 'jpeg', 'bmp', 'tif', 'tiff'];

export function imageMime(path: string): string | undefined {
  switch (extname(path).slice(1).toLowerCase()) {
    case 'png':
      return 'image/png';
    case 'jpg':
    case 'jpeg':
      return 'image/jpeg';
    case 'bmp':
      return 'image/bmp';
    case 'gif':
      return 'image/gif';
    case 'webp':
      return 'image/webp';
    default:
      return undefined; // TIFF: browsers cannot show it
  }
}

/** The file as a data URI, or undefined when the browser cannot show it or it is too large. */
export async function fileDataUri(path: string, maxBytes = 8 * 1024 * 1024): Promise<string | undefined> {
  const mime = imageMime(path);
  if (!mime) return undefined;
  try {
    const uri = vscode.Uri.file(path);
    const st = await vscode.workspace.fs.stat(uri);
    if (st.size > maxBytes) return undefined;
    const bytes = await vscode.workspace.fs.readFile(uri);
    return `data:${mime};base64,${Buffer.from(bytes).toString('base64')}`;
  } catch {
    return undefined;
  }
}

export function isImagePath(path: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(path).slice(1).toLowerCase());
}
