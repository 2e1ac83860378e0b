/**
 * A raw JSON-RPC client on a daemon's stdio: writes LSP-framed bodies byte for byte (so tests can
 * send what no well-behaved client would) and records every framed message that comes back.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';

/** A raw framed client on the daemon's stdio. */
export class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: Array<(m: unknown) => void> = [];
  readonly received: unknown[] = [];
  constructor(private readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        const he = this.buf.indexOf('\r\n\r\n');
        if (he < 0) return;
        const m = /content-length:\s*(\d+)/i.exec(this.buf.subarray(0, he).toString('ascii'));
        assert.ok(m, `a frame without Content-Length from the daemon: ${this.buf.subarray(0, he)}`);
        const len = Number(m[1]);
        if (this.buf.length < he + 4 + len) return;
        const msg = JSON.parse(this.buf.subarray(he + 4, he + 4 + len).toString('utf8'));
        this.buf = this.buf.subarray(he + 4 + len);
        this.received.push(msg);
        for (const w of this.waiters.splice(0)) w(msg);
      }
    });
  }
  sendRaw(body: Buffer): void {
    this.proc.stdin!.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]));
  }
  send(msg: unknown): void {
    this.sendRaw(Buffer.from(JSON.stringify(msg), 'utf8'));
  }
  /** Waits until `pred` holds over what was received (checked on every message). */
  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const t0 = Date.now();
    while (!pred()) {
      const left = ms - (Date.now() - t0);
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => (clearTimeout(t), r()));
      });
    }
  }
}

