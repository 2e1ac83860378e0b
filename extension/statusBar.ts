/**
 * One status bar item: training progress while a run trains
 * (`$(sync~spin) U-Flow carpet · 12/200 · loss -3.41 · 4m left`, click → Training view), a notice
 * when a run was interrupted, and otherwise `U-Flow: <backend>` with why that backend was chosen,
 * what backbone `auto` would train with (the daemon's sentence) and a link to Install GPU Backend.
 */
import * as vscode from 'vscode';
import type { StatusResult } from '../server/protocol.js';
import type { TrainingRunView } from '../webview/shared.js';
import type { Daemon } from './daemon.js';
import { formatDuration, type TrainingTracker } from './training.js';

export const STATUS_ITEM_ID = 'uflow.status';

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  private readonly subs: vscode.Disposable[] = [];
  private finished: { run: TrainingRunView; until: number } | undefined;
  private finishedTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly daemon: Daemon,
    private readonly tracker: TrainingTracker,
  ) {
    this.item = vscode.window.createStatusBarItem(STATUS_ITEM_ID, vscode.StatusBarAlignment.Left, 50);
    this.item.name = 'U-Flow';
    this.subs.push(
      daemon.onDidChangeState(() => this.render()),
      daemon.onDidChangeStatus(() => this.render()),
      tracker.onDidChange((r) => {
        if (r.state === 'finished' || r.state === 'failed' || r.state === 'cancelled') {
          this.finished = { run: r, until: Date.now() + 20_000 };
          clearTimeout(this.finishedTimer);
          this.finishedTimer = setTimeout(() => {
            this.finished = undefined;
            this.render();
          }, 20_000);
        }
        this.render();
      }),
      tracker.onDidInterrupt(() => this.render()),
    );
    this.render();
    this.item.show();
  }

  render(): void {
    const item = this.item;
    item.backgroundColor = undefined;
    const active = this.tracker.active();
    if (active.length) {
      const r = active[active.length - 1]!;
      const u = r.last;
      const parts = [`$(sync~spin) U-Flow ${r.category}`];
      if (u?.phase === 'features') parts.push(`features${u.steps ? ` ${u.step}/${u.steps}` : ''}`);
      else if (u) parts.push(`${u.epoch}/${u.epochs}`);
      if (u?.loss !== undefined && Number.isFinite(u.loss)) parts.push(`loss ${u.loss.toFixed(2)}`);
      if (u?.phase === 'validate') parts.push('validating');
      const eta = formatDuration(u?.etaSeconds);
      if (eta) parts.push(`${eta} left`);
      if (active.length > 1) parts.push(`+${active.length - 1}`);
      item.text = parts.join(' · ');
      const tip = new vscode.MarkdownString(undefined, true);
      tip.appendMarkdown(`**U-Flow** training \`${r.category}\` (${r.model})\n\n`);
      if (u) {
        tip.appendMarkdown(`epoch ${u.epoch} of ${u.epochs}, step ${u.step}/${u.steps}`);
        if (u.imagesPerSecond) tip.appendMarkdown(`, ${u.imagesPerSecond.toFixed(1)} images/s`);
        tip.appendMarkdown('\n\n');
        if (u.best && Object.keys(u.best).length) tip.appendMarkdown(`best: ${metricText(u.best)}\n\n`);
        if (u.message) tip.appendMarkdown(`${u.message}\n\n`);
        if (u.backbone) tip.appendMarkdown(`backbone: ${escapeMd(u.backbone)}\n\n`);
        if (u.notice) tip.appendMarkdown(`$(info) ${escapeMd(u.notice)}\n\n`);
      }
      if (r.estimate) tip.appendMarkdown(`Estimated before training: ${escapeMd(r.estimate)}\n\n`);
      tip.appendMarkdown(`Click to open the Training view.`);
      item.tooltip = tip;
      item.command = { command: 'uflow.showTraining', title: 'Show Training', arguments: [r.runId] };
      item.accessibilityInformation = { label: item.text.replace(/\$\([^)]*\)\s*/g, '') };
      return;
    }
    const lost = this.tracker.interrupted;
    if (lost.length) {
      const r = lost[lost.length - 1]!;
      const at = r.last ? ` at epoch ${r.last.epoch}/${r.last.epochs}` : '';
      item.text = `$(warning) U-Flow ${r.category} interrupted${at}`;
      item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
      const tip = new vscode.MarkdownString(undefined, true);
      tip.appendMarkdown(
        `**U-Flow**: the daemon stopped while training \`${r.category}\`${at}. It was restarted; the run \`${r.runId}\` keeps its last checkpoint and is listed under Runs: resume it (U-Flow: Resume Training) or evaluate it from there.\n\nClick to show the runs.`,
      );
      item.tooltip = tip;
      item.command = { command: 'uflow.showRuns', title: 'Show Runs', arguments: [r.runId] };
      item.accessibilityInformation = { label: `U-Flow ${r.category} interrupted${at}` };
      return;
    }
    const state = this.daemon.state;
    if (state === 'starting') {
      this.idle('$(loading~spin) U-Flow: starting', 'The U-Flow daemon is starting.', 'uflow.showLog');
    } else if (state === 'restarting') {
      this.idle('$(loading~spin) U-Flow: restarting', 'The U-Flow daemon stopped and is being restarted. See the U-Flow output for its log.', 'uflow.showLog');
    } else if (state === 'failed' || state === 'stopped') {
      this.idle('$(error) U-Flow: stopped', 'The U-Flow daemon is not running. Click to restart it.', 'uflow.restartDaemon');
      if (state === 'failed') item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else if (this.finished && this.finished.until > Date.now()) {
      // A training just ended (for a little while, then the backend again).
      const r = this.finished.run;
      const icon = r.state === 'finished' ? '$(check)' : r.state === 'cancelled' ? '$(circle-slash)' : '$(error)';
      item.text = `${icon} U-Flow ${r.category} ${r.state}`;
      item.tooltip = r.message ?? `Training of ${r.category} ${r.state}. Click to open the Training view.`;
      item.command = { command: 'uflow.showTraining', title: 'Show Training', arguments: [r.runId] };
      item.accessibilityInformation = { label: `U-Flow ${r.category} ${r.state}` };
    } else {
      const s = this.daemon.status;
      item.text = `$(pulse) U-Flow: ${s?.engine.backend ?? '…'}`;
      item.tooltip = backendTooltip(s);
      item.command = { command: 'uflow.showRuns', title: 'Show Runs' };
      item.accessibilityInformation = { label: `U-Flow backend ${s?.engine.backend ?? 'unknown'}` };
    }
  }

  private idle(text: string, tooltip: string, command: string): void {
    this.item.text = text;
    this.item.tooltip = tooltip;
    this.item.command = command;
    this.item.accessibilityInformation = { label: text.replace(/\$\([^)]*\)\s*/g, '') };
  }

  dispose(): void {
    clearTimeout(this.finishedTimer);
    for (const s of this.subs) s.dispose();
    this.item.dispose();
  }
}

export function backendTooltip(s: StatusResult | undefined): vscode.MarkdownString {
  const tip = new vscode.MarkdownString(undefined, true);
  tip.isTrusted = { enabledCommands: ['uflow.installBackend', 'uflow.showLog', 'uflow.showRuns'] };
  if (!s) {
    tip.appendMarkdown('**U-Flow**: waiting for the daemon.');
    return tip;
  }
  tip.appendMarkdown(`**U-Flow** tensor backend: \`${s.engine.backend}\` on ${s.engine.device}\n\n`);
  if (s.engine.reason) tip.appendMarkdown(`Why: ${s.engine.reason}\n\n`);
  if (s.engine.skipped.length) {
    tip.appendMarkdown('Faster backends not used:\n');
    for (const k of s.engine.skipped) tip.appendMarkdown(`\n- \`${k.backend}\`: ${escapeMd(k.why)}`);
    tip.appendMarkdown('\n\n');
  }
  if (s.autoBackbone) {
    const a = s.autoBackbone;
    tip.appendMarkdown(`Backbone \`auto\` trains U-Flow with \`${a.backbone}\` at ${Array.isArray(a.inputSize) ? a.inputSize.join('×') : a.inputSize}: ${escapeMd(a.reason)}\n\n`);
    if (a.notice) tip.appendMarkdown(`$(info) ${escapeMd(a.notice)}\n\n`);
  }
  if (!/^tensorflow/.test(s.engine.backend)) {
    tip.appendMarkdown('[$(cloud-download) Install GPU Backend](command:uflow.installBackend) to train with TensorFlow (CUDA or native CPU).\n\n');
  }
  const running = s.jobs.filter((j) => j.state === 'running' || j.state === 'queued');
  if (running.length) tip.appendMarkdown(`Jobs: ${running.map((j) => escapeMd(j.title)).join(', ')}\n\n`);
  tip.appendMarkdown(`[Show Runs](command:uflow.showRuns) · [Show Log](command:uflow.showLog)`);
  return tip;
}

export function metricText(m: object): string {
  const names: Record<string, string> = { image_auroc: 'image AUROC', pixel_auroc: 'pixel AUROC', aupro: 'AUPRO', miou: 'mIoU' };
  return Object.entries(m)
    .filter(([k, v]) => k in names && typeof v === 'number')
    .map(([k, v]) => `${names[k]} ${(v as number).toFixed(3)}`)
    .join(', ');
}

export function escapeMd(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, (c) => `\\${c}`);
}
