/**
 * The Runs view: every run of the workspace (newest first) with its checkpoint, results and test
 * images; an image item's hover tooltip shows its anomaly map (MarkdownString, data-URI image),
 * resolved lazily.
 */
import { basename, isAbsolute, join } from 'node:path';
import * as vscode from 'vscode';
import type { ImageResult, RunInfo } from '../server/protocol.js';
import { errorMessage, type Daemon } from './daemon.js';
import { predictionMarkdown } from './hover.js';
import { hoverImages } from './png.js';
import type { Predictions } from './predictions.js';
import { exists, fileDataUri, listRuns, readEvaluation, runDescription, runLabel } from './runs.js';
import { escapeMd, metricText } from './statusBar.js';
import type { TrainingTracker } from './training.js';

export type RunsNode =
  | { kind: 'run'; run: RunInfo }
  | { kind: 'file'; run: RunInfo; label: string; path: string; description?: string }
  | { kind: 'results'; run: RunInfo }
  | { kind: 'images'; run: RunInfo; images: ImageResult[] }
  | { kind: 'image'; run: RunInfo; image: ImageResult }
  | { kind: 'message'; label: string };

const STATE_ICONS: Record<string, [string, string | undefined]> = {
  finished: ['pass', 'testing.iconPassed'],
  running: ['sync~spin', undefined],
  queued: ['clock', undefined],
  cancelled: ['circle-slash', undefined],
  failed: ['error', 'testing.iconFailed'],
  interrupted: ['warning', 'list.warningForeground'],
};

export class RunsTreeProvider implements vscode.TreeDataProvider<RunsNode>, vscode.Disposable {
  private readonly _onDidChange = new vscode.EventEmitter<RunsNode | undefined>();
  readonly onDidChangeTreeData = this._onDidChange.event;
  private readonly subs: vscode.Disposable[] = [];
  private refreshTimer: NodeJS.Timeout | undefined;
  /** The last listing, for tests and for reveal(). */
  runs: RunInfo[] = [];

  constructor(
    private readonly daemon: Daemon,
    private readonly tracker: TrainingTracker,
    private readonly predictions: Predictions,
  ) {
    const watcher = vscode.workspace.createFileSystemWatcher('**/.uflow/runs/*/{run.json,evaluation.json,checkpoint.safetensors}');
    this.subs.push(
      watcher,
      watcher.onDidChange(() => this.refreshSoon()),
      watcher.onDidCreate(() => this.refreshSoon()),
      watcher.onDidDelete(() => this.refreshSoon()),
      daemon.onJobEnded(() => this.refresh()),
      daemon.onDidChangeState((s) => s === 'ready' && this.refresh()),
      tracker.onDidChange(() => this.refreshSoon()),
    );
  }

  refresh(): void {
    clearTimeout(this.refreshTimer);
    this._onDidChange.fire(undefined);
  }

  /** Coalesces bursts (a training writes run.json every epoch). */
  private refreshSoon(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this._onDidChange.fire(undefined), 500);
  }

  async getChildren(node?: RunsNode): Promise<RunsNode[]> {
    if (!node) {
      if (!vscode.workspace.workspaceFolders?.length) return [{ kind: 'message', label: 'Open a folder to train U-Flow on its images.' }];
      try {
        this.runs = await listRuns(this.daemon);
      } catch (e) {
        return [{ kind: 'message', label: `Daemon unavailable: ${errorMessage(e)}` }];
      }
      // A run the daemon still lists as running but whose training we saw die is interrupted.
      return this.runs.map((run) => ({ kind: 'run', run: this.withLiveState(run) }));
    }
    if (node.kind === 'run') {
      const run = node.run;
      const out: RunsNode[] = [];
      const ckpt = join(run.dir, 'checkpoint.safetensors');
      if (await exists(ckpt)) {
        out.push({ kind: 'file', run, label: 'checkpoint.safetensors', path: ckpt, description: `last checkpoint · epoch ${run.epochsDone}` });
      }
      const metrics = join(run.dir, 'metrics.jsonl');
      if (await exists(metrics)) out.push({ kind: 'file', run, label: 'metrics.jsonl', path: metrics, description: 'training curves' });
      out.push({ kind: 'file', run, label: 'run.json', path: join(run.dir, 'run.json'), description: 'config and state' });
      const ev = await readEvaluation(run);
      if (ev) {
        out.push({ kind: 'results', run });
        const images = [...ev.images].sort((a, b) => b.score - a.score);
        out.push({ kind: 'images', run, images });
      }
      return out;
    }
    if (node.kind === 'images') return node.images.map((image) => ({ kind: 'image', run: node.run, image }));
    return [];
  }

  private withLiveState(run: RunInfo): RunInfo {
    const live = this.tracker.get(run.runId);
    if (live && live.state === 'interrupted' && (run.state === 'running' || run.state === 'queued')) return { ...run, state: 'interrupted' };
    return run;
  }

  getTreeItem(node: RunsNode): vscode.TreeItem {
    switch (node.kind) {
      case 'message':
        return new vscode.TreeItem(node.label);
      case 'run': {
        const r = node.run;
        const item = new vscode.TreeItem(runLabel(r), vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `run:${r.dir}`;
        item.description = runDescription(r);
        const [icon, color] = STATE_ICONS[r.state] ?? ['circle-outline', undefined];
        item.iconPath = new vscode.ThemeIcon(icon, color ? new vscode.ThemeColor(color) : undefined);
        item.contextValue = `run.${r.state}`;
        const tip = new vscode.MarkdownString();
        tip.appendMarkdown(`**${r.category}** · ${r.model} · ${r.state}\n\n`);
        tip.appendMarkdown(`\`${r.runId}\`\n\n`);
        tip.appendMarkdown(`${r.epochsDone} of ${r.config?.trainer?.epochs ?? '?'} epochs · ${r.engine?.backend ?? ''} · ${new Date(r.createdAt).toLocaleString()}\n\n`);
        const best = metricText(r.best ?? {});
        if (best) tip.appendMarkdown(`best: ${best}\n\n`);
        if (r.error) tip.appendMarkdown(`${r.error}\n\n`);
        const auto = r.autoBackbone?.chosen;
        if (auto) tip.appendMarkdown(`backbone auto → \`${auto.backbone}\`: ${escapeMd(auto.reason)}\n\n`);
        if (auto?.notice) tip.appendMarkdown(`Note: ${escapeMd(auto.notice)}\n\n`);
        if (r.calibration) tip.appendMarkdown(`threshold: ${r.calibration.variant === 'calibrated' ? 'calibrated' : `paper’s ${r.calibration.variant} NFA`} — ${r.calibration.description}\n\n`);
        tip.appendMarkdown(`dataset: \`${r.datasetPath}\``);
        item.tooltip = tip;
        item.command = { command: 'uflow.showTraining', title: 'Show Training', arguments: [r.runId] };
        return item;
      }
      case 'file': {
        const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
        item.id = `file:${node.path}`;
        item.description = node.description;
        item.resourceUri = vscode.Uri.file(node.path);
        item.iconPath = node.label.endsWith('.safetensors') ? new vscode.ThemeIcon('save') : vscode.ThemeIcon.File;
        item.contextValue = node.label.endsWith('.safetensors') ? 'checkpoint' : 'runFile';
        if (!node.label.endsWith('.safetensors')) item.command = { command: 'vscode.open', title: 'Open', arguments: [vscode.Uri.file(node.path)] };
        return item;
      }
      case 'results': {
        const item = new vscode.TreeItem('Results', vscode.TreeItemCollapsibleState.None);
        item.id = `results:${node.run.dir}`;
        item.iconPath = new vscode.ThemeIcon('graph');
        item.description = metricText(node.run.best ?? {}) || undefined;
        item.command = { command: 'uflow.openResults', title: 'Open Results', arguments: [node.run.runId] };
        return item;
      }
      case 'images': {
        const item = new vscode.TreeItem('Test images', vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `images:${node.run.dir}`;
        item.iconPath = new vscode.ThemeIcon('file-media');
        item.description = `${node.images.length} · by score`;
        return item;
      }
      case 'image': {
        const i = node.image;
        const item = new vscode.TreeItem(basename(i.path), vscode.TreeItemCollapsibleState.None);
        item.id = `image:${node.run.dir}:${i.path}`;
        item.description = `${i.score.toFixed(3)} · ${i.defect}${i.maxNegLogNfa > 0 ? ' · detected' : ''}`;
        item.resourceUri = vscode.Uri.file(i.path);
        item.iconPath = new vscode.ThemeIcon(i.label ? (i.maxNegLogNfa > 0 ? 'bug' : 'eye-closed') : i.maxNegLogNfa > 0 ? 'warning' : 'check');
        item.contextValue = 'image';
        item.command = { command: 'vscode.openWith', title: 'Open in U-Flow Image View', arguments: [vscode.Uri.file(i.path), 'uflow.imageView'] };
        return item;
      }
    }
  }

  async resolveTreeItem(item: vscode.TreeItem, node: RunsNode, token: vscode.CancellationToken): Promise<vscode.TreeItem> {
    if (node.kind !== 'image' || item.tooltip) return item;
    item.tooltip = await imageTooltip(node.run, node.image, this.predictions, token);
    return item;
  }

  dispose(): void {
    clearTimeout(this.refreshTimer);
    for (const s of this.subs) s.dispose();
    this._onDidChange.dispose();
  }
}

/** The anomaly map of an evaluated image: the cached PNGs of the run, else uflow/predict. */
export async function imageTooltip(run: RunInfo, image: ImageResult, predictions: Predictions, token?: vscode.CancellationToken): Promise<vscode.MarkdownString> {
  const original = await fileDataUri(image.path, 64 * 1024 * 1024);
  const abs = (rel: string) => (isAbsolute(rel) ? rel : join(run.dir, rel));
  if (image.maps) {
    const [anomaly, seg] = await Promise.all([fileDataUri(abs(image.maps.overlay ?? image.maps.anomaly)), fileDataUri(abs(image.maps.segmentation))]);
    if (anomaly) {
      const md = new vscode.MarkdownString(undefined, true);
      md.supportHtml = true;
      md.appendMarkdown(`**${basename(image.path)}** (${image.defect}) · score **${image.score.toFixed(3)}** · max −log NFA **${image.maxNegLogNfa.toFixed(2)}**\n\n`);
      md.appendMarkdown(
        hoverImages([
          { src: original, alt: 'image', optional: true },
          { src: anomaly, alt: 'anomaly map' },
          { src: seg, alt: 'NFA segmentation', optional: true },
        ]),
      );
      md.appendMarkdown(`\n\n<span>image · anomaly map · NFA segmentation — run \`${run.runId}\`</span>`);
      return md;
    }
  }
  try {
    const p = await predictions.predict(image.path, { runId: run.runId }, token);
    return predictionMarkdown(p, original);
  } catch (e) {
    return new vscode.MarkdownString(`No anomaly map for ${basename(image.path)}: ${errorMessage(e)}`);
  }
}
