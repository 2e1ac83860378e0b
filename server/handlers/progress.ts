/**
 * Work-done progress (`$/progress` begin / report / end) and the texts the daemon puts in it.
 * A training reads `epoch 12/200 · loss -3.41 · 14 img/s · ETA 4m`.
 */
import type { WorkDoneProgressBegin, WorkDoneProgressEnd, WorkDoneProgressReport } from 'vscode-languageserver/node.js';
import type { TrainingUpdate } from '../protocol.js';

export type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

/** Reports are sent at most this often, except the ones marked `force` (a new epoch, a phase change). */
const MIN_REPORT_INTERVAL_MS = 250;

export class WorkDoneReporter {
  private begun = false;
  private ended = false;
  private lastReport = 0;
  private lastPercentage = -1;

  constructor(
    readonly token: string | number,
    private readonly send: (value: ProgressValue) => void,
    private readonly onEnd: () => void = () => undefined,
  ) {}

  get active(): boolean {
    return this.begun && !this.ended;
  }

  begin(title: string, message?: string, percentage?: number, cancellable = true): void {
    if (this.begun) return;
    this.begun = true;
    const v: WorkDoneProgressBegin = { kind: 'begin', title, cancellable };
    if (message !== undefined) v.message = message;
    if (percentage !== undefined) v.percentage = this.clamp(percentage);
    this.send(v);
  }

  report(message: string, percentage?: number, force = false): void {
    if (!this.begun || this.ended) return;
    const now = Date.now();
    if (!force && now - this.lastReport < MIN_REPORT_INTERVAL_MS) return;
    this.lastReport = now;
    const v: WorkDoneProgressReport = { kind: 'report', message };
    if (percentage !== undefined) {
      // Percentages never go back within one progress (the protocol asks for that).
      const p = Math.max(this.clamp(percentage), this.lastPercentage);
      this.lastPercentage = p;
      v.percentage = p;
    }
    this.send(v);
  }

  end(message?: string): void {
    if (this.ended) return;
    if (!this.begun) this.begun = true;
    this.ended = true;
    const v: WorkDoneProgressEnd = { kind: 'end' };
    if (message !== undefined) v.message = message;
    this.send(v);
    this.onEnd();
  }

  private clamp(p: number): number {
    return Math.max(0, Math.min(100, Math.round(p)));
  }
}

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m}m`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

function fmtLoss(x: number): string {
  const a = Math.abs(x);
  return a !== 0 && (a >= 1e4 || a < 1e-2) ? x.toExponential(2) : x.toFixed(2);
}

/** `epoch 12/200 · loss -3.41 · 14 img/s · ETA 4m` (and the other phases' texts). */
export function trainingMessage(u: TrainingUpdate): string {
  if (u.phase === 'features') return `caching features${u.message ? ` (${u.message})` : ''} ${u.step}/${u.steps}`;
  if (u.phase === 'done') return u.message ?? 'done';
  const parts = [`epoch ${u.epoch}/${u.epochs}`];
  if (u.phase === 'validate') parts.push('validating');
  if (u.loss !== undefined && Number.isFinite(u.loss)) parts.push(`loss ${fmtLoss(u.loss)}`);
  if (u.imagesPerSecond !== undefined && u.imagesPerSecond > 0) parts.push(`${u.imagesPerSecond >= 10 ? Math.round(u.imagesPerSecond) : u.imagesPerSecond.toFixed(1)} img/s`);
  if (u.etaSeconds !== undefined) {
    const eta = formatEta(u.etaSeconds);
    if (eta) parts.push(`ETA ${eta}`);
  }
  return parts.join(' · ');
}

/** Share of the whole training done, 0–100 (feature caching counts as 0). */
export function trainingPercentage(u: TrainingUpdate): number {
  if (u.phase === 'done') return 100;
  if (u.phase === 'features' || u.epochs <= 0) return 0;
  const within = u.steps > 0 ? Math.min(1, u.step / u.steps) : 0;
  return (100 * (Math.max(0, u.epoch - 1) + within)) / u.epochs;
}
