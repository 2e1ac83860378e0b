/**
 * What the extension knows about trainings: fed by uflow/trainingUpdate, uflow/jobEnded and the
 * daemon's exits; read by the status bar and the Training view. History of runs trained before
 * the extension started comes from the run's metrics.jsonl.
 */
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { JobEnded, RunInfo, TrainingUpdate } from '../server/protocol.js';
import type { EpochPoint, TrainingRunView } from '../webview/shared.js';

export class TrainingTracker implements vscode.Disposable {
  private readonly runs = new Map<string, TrainingRunView>();
  /** Runs the daemon was training when it died. */
  readonly interrupted: TrainingRunView[] = [];
  private readonly _onChange = new vscode.EventEmitter<TrainingRunView>();
  readonly onDidChange = this._onChange.event;
  private readonly _onInterrupted = new vscode.EventEmitter<TrainingRunView[]>();
  readonly onDidInterrupt = this._onInterrupted.event;

  all(): TrainingRunView[] {
    return [...this.runs.values()];
  }
  get(runId: string): TrainingRunView | undefined {
    return this.runs.get(runId);
  }
  active(): TrainingRunView[] {
    return this.all().filter((r) => r.state === 'running' || r.state === 'queued');
  }
  /** The run the status bar and the Training view show by default: the last one updated. */
  latest(): TrainingRunView | undefined {
    const act = this.active();
    if (act.length) return act[act.length - 1];
    const all = this.all();
    return all[all.length - 1];
  }

  update(u: TrainingUpdate): TrainingRunView {
    let r = this.runs.get(u.runId);
    if (!r) {
      r = { runId: u.runId, jobId: u.jobId, category: u.category, model: u.model, state: 'running', epochs: u.epochs, points: [] };
    }
    // Keep insertion order = recency.
    this.runs.delete(u.runId);
    this.runs.set(u.runId, r);
    r.jobId = u.jobId;
    r.state = u.phase === 'done' ? 'finished' : 'running';
    r.epochs = u.epochs;
    r.last = u;
    r.message = u.message;
    if (u.estimate) r.estimate = u.estimate.line;
    const i = this.interrupted.findIndex((x) => x.runId === u.runId);
    if (i >= 0) this.interrupted.splice(i, 1);
    if (u.phase === 'train' || u.phase === 'validate' || u.phase === 'done') {
      if (u.epoch > 0) {
        let p = r.points.find((q) => q.epoch === u.epoch);
        if (!p) {
          p = { epoch: u.epoch };
          r.points.push(p);
          r.points.sort((a, b) => a.epoch - b.epoch);
        }
        if (u.loss !== undefined && Number.isFinite(u.loss)) p.loss = u.loss;
        if (u.imagesPerSecond !== undefined) p.imagesPerSecond = u.imagesPerSecond;
        if (u.metrics && Object.keys(u.metrics).length) p.metrics = { ...p.metrics, ...u.metrics };
      }
    }
    this._onChange.fire(r);
    return r;
  }

  jobEnded(e: JobEnded): void {
    if (e.kind !== 'train') return;
    const r = [...this.runs.values()].find((x) => x.jobId === e.jobId || (e.runId && x.runId === e.runId));
    if (!r) return;
    r.state = e.state === 'done' ? 'finished' : e.state;
    if (e.error) r.message = e.error;
    this._onChange.fire(r);
  }

  /** The daemon died: whatever it was training is interrupted. */
  daemonDied(): TrainingRunView[] {
    const lost = this.active();
    for (const r of lost) {
      r.state = 'interrupted';
      r.message = 'The U-Flow daemon stopped during training; the last checkpoint is kept.';
      if (!this.interrupted.some((x) => x.runId === r.runId)) this.interrupted.push(r);
      this._onChange.fire(r);
    }
    if (lost.length) this._onInterrupted.fire(lost);
    return lost;
  }

  /** The user has seen the notice (Show Runs). */
  clearInterrupted(): void {
    if (!this.interrupted.length) return;
    this.interrupted.length = 0;
    this._onInterrupted.fire([]);
  }

  /** A view of a run that may not have trained in this session (history from metrics.jsonl). */
  async fromRun(run: RunInfo): Promise<TrainingRunView> {
    const known = this.runs.get(run.runId);
    if (known && known.points.length) return known;
    const points = await readMetricsFile(run.dir);
    const view: TrainingRunView = known ?? {
      runId: run.runId,
      category: run.category,
      model: run.model,
      state: run.state,
      epochs: run.config.trainer.epochs,
      points: [],
    };
    if (!known) view.state = run.state;
    if (!view.points.length) view.points = points;
    if (run.error && !view.message) view.message = run.error;
    this.runs.set(run.runId, view);
    return view;
  }

  dispose(): void {
    this._onChange.dispose();
    this._onInterrupted.dispose();
  }
}

async function readMetricsFile(dir: string): Promise<EpochPoint[]> {
  try {
    const bytes = await vscode.workspace.fs.readFile(vscode.Uri.file(join(dir, 'metrics.jsonl')));
    const out: EpochPoint[] = [];
    for (const line of new TextDecoder().decode(bytes).split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as { epoch: number; loss?: number; imagesPerSecond?: number; metrics?: EpochPoint['metrics'] };
        out.push({ epoch: r.epoch, loss: r.loss, imagesPerSecond: r.imagesPerSecond, metrics: r.metrics });
      } catch {
        /* skip a torn line */
      }
    }
    return out;
  } catch {
    return [];
  }
}

export function formatDuration(seconds: number | undefined): string | undefined {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return undefined;
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds - h * 3600) / 60);
  return m ? `${h}h ${m}m` : `${h}h`;
}
