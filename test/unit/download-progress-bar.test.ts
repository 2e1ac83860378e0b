/** server/progress-bar.ts: one redrawn line on a TTY, plain lines (start, every 10 %, end) otherwise. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, formatDuration, ProgressBar, type ProgressStream } from '../../server/progress-bar.js';

function sink(isTTY: boolean, columns = 80): ProgressStream & { out: string } {
  const s = { out: '', isTTY, columns, write: (x: string) => ((s.out += x), true) };
  return s;
}

test('formatting', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(12_345_678), '12.3 MB');
  assert.equal(formatBytes(1_600_000_000), '1.60 GB');
  assert.equal(formatDuration(65), '1:05');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(Infinity), '--:--');
});

test('TTY: one line redrawn in place, throttled, with bar, percent, rate and ETA', () => {
  let now = 0;
  const s = sink(true, 100);
  const bar = new ProgressBar({ stream: s, label: 'bottle auc', now: () => now });
  bar.update({ bytes: 0, total: 1000 });
  now = 10;
  bar.update({ bytes: 100, total: 1000, rate: 100 }); // throttled
  now = 200;
  bar.update({ bytes: 500, total: 1000, rate: 100 });
  bar.done();
  const frames = s.out.split('\r').filter(Boolean);
  assert.equal(frames.length, 3, 'two redraws and the final line');
  assert.match(frames[1]!, /^bottle auc \[#+\.+\]  50%  500 B\/1.00 kB  100 B\/s  ETA 0:05\x1b\[K$/);
  assert.ok(frames[1]!.replace('\x1b[K', '').length <= 99, 'fits the terminal width');
  assert.match(frames[2]!, /^bottle auc: done, 500 B\x1b\[K\n$/);
  assert.equal(s.out.split('\n').length, 2, 'no newline before the end');
});

test('not a TTY: plain lines at the start, each 10 % and the end', () => {
  const s = sink(false);
  const bar = new ProgressBar({ stream: s, label: 'f.ckpt', now: () => 0 });
  for (let b = 0; b <= 1000; b += 50) bar.update({ bytes: b, total: 1000, rate: 2000 });
  bar.done();
  const lines = s.out.trim().split('\n');
  assert.equal(lines[0], 'f.ckpt: starting of 1.00 kB');
  assert.equal(lines.length, 1 + 9 + 1, 'start, 10 %…90 %, end');
  assert.equal(lines[1], 'f.ckpt: 10% 100 B/1.00 kB, 2.00 kB/s');
  assert.equal(lines.at(-1), 'f.ckpt: done, 1.00 kB');
  assert.ok(!s.out.includes('\r') && !s.out.includes('\x1b'), 'no control characters in logs');
});

test('not a TTY, unknown size: a line every plainEveryMs; resumed downloads say so', () => {
  let now = 0;
  const s = sink(false);
  const bar = new ProgressBar({ stream: s, label: 'w', now: () => now, plainEveryMs: 1000 });
  bar.update({ bytes: 300 });
  for (now = 100; now <= 2500; now += 100) bar.update({ bytes: 300 + now });
  bar.setLabel('next');
  bar.update({ bytes: 0 });
  bar.fail('next: failed');
  assert.deepEqual(s.out.trim().split('\n'), ['w: resuming at 300 B', 'w: 1.30 kB', 'w: 2.30 kB', 'next: starting', 'next: failed']);
});
