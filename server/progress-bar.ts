/**
 * A terminal progress bar for downloads in the CLI. On a TTY it redraws one line
 * (`label [#########.........] 45%  12.3 MB/27.0 MB  4.1 MB/s  ETA 0:04`); when the output is not a
 * TTY (a pipe, a CI log) it degrades to plain lines: one at the start, one per 10 % (or every
 * `plainEveryMs` when the size is unknown) and one at the end.
 */

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressBarOptions {
  stream?: ProgressStream;
  label?: string;
  /** force TTY or plain behaviour (default: stream.isTTY) */
  tty?: boolean;
  /** minimum interval between redraws on a TTY (default 100 ms) */
  redrawMs?: number;
  /** interval between plain lines when the size is unknown (default 5 s) */
  plainEveryMs?: number;
  now?: () => number;
}

export interface ProgressUpdate {
  bytes: number;
  total?: number;
  /** bytes per second */
  rate?: number;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export class ProgressBar {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private label: string;
  private lastDraw = -Infinity;
  private lastPlainStep = -1;
  private lastPlainAt = -Infinity;
  private started = false;
  private finished = false;
  private last: ProgressUpdate = { bytes: 0 };

  constructor(private readonly opts: ProgressBarOptions = {}) {
    this.stream = opts.stream ?? process.stdout;
    this.tty = opts.tty ?? !!this.stream.isTTY;
    this.now = opts.now ?? Date.now;
    this.label = opts.label ?? '';
  }

  /** Starts a new item (e.g. the next file) with this label. */
  setLabel(label: string): void {
    if (this.started && !this.finished && this.tty) this.stream.write('\n');
    this.label = label;
    this.started = false;
    this.finished = false;
    this.lastDraw = -Infinity;
    this.lastPlainStep = -1;
    this.lastPlainAt = -Infinity;
  }

  update(p: ProgressUpdate): void {
    this.last = p;
    const t = this.now();
    if (this.tty) {
      if (t - this.lastDraw < (this.opts.redrawMs ?? 100) && this.started) return;
      this.lastDraw = t;
      this.started = true;
      this.stream.write(`\r${this.line(p)}\x1b[K`);
      return;
    }
    if (!this.started) {
      this.started = true;
      this.lastPlainAt = t;
      this.lastPlainStep = p.total ? Math.floor((10 * p.bytes) / p.total) : 0;
      this.stream.write(`${this.label}${this.label ? ': ' : ''}${p.bytes > 0 ? `resuming at ${formatBytes(p.bytes)}` : 'starting'}${p.total ? ` of ${formatBytes(p.total)}` : ''}\n`);
      return;
    }
    if (p.total) {
      const step = Math.floor((10 * p.bytes) / p.total);
      if (step > this.lastPlainStep && step < 10) {
        this.lastPlainStep = step;
        this.stream.write(`${this.plainLine(p)}\n`);
      }
    } else if (t - this.lastPlainAt >= (this.opts.plainEveryMs ?? 5000)) {
      this.lastPlainAt = t;
      this.stream.write(`${this.plainLine(p)}\n`);
    }
  }

  /** Ends the current item with a final line (message, or the totals). */
  done(message?: string): void {
    if (this.finished) return;
    this.finished = true;
    const text = message ?? `${this.label}${this.label ? ': ' : ''}done, ${formatBytes(this.last.bytes)}`;
    this.stream.write(this.tty ? `\r${text}\x1b[K\n` : `${text}\n`);
  }

  /** Ends the current item with a failure line. */
  fail(message: string): void {
    this.done(message);
  }

  private plainLine(p: ProgressUpdate): string {
    const pct = p.total ? `${Math.floor((100 * p.bytes) / p.total)}% ` : '';
    const rate = p.rate ? `, ${formatBytes(p.rate)}/s` : '';
    return `${this.label}${this.label ? ': ' : ''}${pct}${formatBytes(p.bytes)}${p.total ? `/${formatBytes(p.total)}` : ''}${rate}`;
  }

  private line(p: ProgressUpdate): string {
    const cols = Math.max(40, this.stream.columns ?? 80);
    const rate = p.rate ? `  ${formatBytes(p.rate)}/s` : '';
    const eta = p.total && p.rate ? `  ETA ${formatDuration((p.total - p.bytes) / p.rate)}` : '';
    const sizes = `  ${formatBytes(p.bytes)}${p.total ? `/${formatBytes(p.total)}` : ''}`;
    if (!p.total) return `${this.label}${sizes}${rate}`.slice(0, cols - 1);
    const frac = Math.min(1, Math.max(0, p.bytes / p.total));
    const pct = `${Math.floor(frac * 100)}%`.padStart(4);
    const tail = ` ${pct}${sizes}${rate}${eta}`;
    const label = this.label.length > cols / 3 ? `${this.label.slice(0, Math.floor(cols / 3) - 1)}…` : this.label;
    const width = Math.max(10, cols - 1 - label.length - tail.length - 3);
    const filled = Math.round(frac * width);
    return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}]${tail}`.slice(0, cols - 1);
  }
}
