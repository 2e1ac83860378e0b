/**
 * Fault catalogue: datasets. Files planted in an image folder — train/good (then `uflow train`) or
 * test/good, test/<defect> (then `uflow evaluate` of a trained run) — and what must happen:
 * skipped with a warning naming the file (the report's counts unchanged), refused naming the
 * file, or accepted. Generators: every skip fault × its folders × name styles; every refusal ×
 * its folders; the accepted variants.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { category, type FaultCase, type Observed } from './catalogue.js';
import { baseWithRun, cliEvaluate, cliTrain, hugePng, newestRun, png, report, runJson, write } from './helpers.js';

type Where = 'train/good' | 'test/good' | 'test/spot';
const folder = (dir: string, w: Where) => join(dir, 'data', 'grid', ...w.split('/'));
const BASE_COUNTS: Record<Where, number> = { 'train/good': 4, 'test/good': 2, 'test/spot': 2 };

/** Name styles: the behaviour must not depend on how a file is called. */
const NAMES = [(stem: string) => stem, (stem: string) => `${stem} with spaces é✓`];

interface Fault {
  id: string;
  /** Plants the fault in `f` (an image folder) with the stem given; returns the planted path. */
  plant(f: string, stem: string): Promise<string> | string;
  where: Where[];
  env?: Record<string, string>;
}

const SKIPPED: Array<Fault & { kind: string }> = [
  { id: 'text file', kind: 'not-image', where: ['train/good', 'test/good'], plant: (f, s) => (write(join(f, `${s}.txt`), 'notes'), join(f, `${s}.txt`)) },
  { id: 'gif', kind: 'not-image', where: ['train/good', 'test/spot'], plant: (f, s) => (write(join(f, `${s}.gif`), Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1')), join(f, `${s}.gif`)) },
  { id: 'no extension', kind: 'not-image', where: ['train/good'], plant: (f, s) => (write(join(f, s), 'x'), join(f, s)) },
  { id: 'symlink to itself', kind: 'symlink-loop', where: ['train/good', 'test/good'], plant: (f, s) => (symlinkSync(`${s}.png`, join(f, `${s}.png`)), join(f, `${s}.png`)) },
  {
    id: 'two symlinks in a cycle',
    kind: 'symlink-loop',
    where: ['train/good'],
    plant: (f, s) => {
      symlinkSync(`${s}-b.png`, join(f, `${s}-a.png`));
      symlinkSync(`${s}-a.png`, join(f, `${s}-b.png`));
      return join(f, `${s}-a.png`);
    },
  },
  { id: 'dangling symlink', kind: 'broken-link', where: ['train/good', 'test/spot'], plant: (f, s) => (symlinkSync('/nonexistent/uflow/x.png', join(f, `${s}.png`)), join(f, `${s}.png`)) },
  { id: '1x1 image', kind: 'too-small', where: ['train/good', 'test/good'], plant: async (f, s) => (await png(join(f, `${s}.png`), 1, 1), join(f, `${s}.png`)) },
  { id: '3x40 image', kind: 'too-small', where: ['train/good'], plant: async (f, s) => (await png(join(f, `${s}.png`), 3, 40), join(f, `${s}.png`)) },
  { id: 'duplicate by content', kind: 'duplicate', where: ['train/good', 'test/good'], plant: (f, s) => (copyFileSync(join(f, '000.png'), join(f, `${s}.png`)), join(f, `${s}.png`)) },
  { id: 'sub-folder', kind: 'subfolder', where: ['train/good'], plant: async (f, s) => (await png(join(f, s, 'inner.png'), 32, 32), join(f, s)) },
  { id: 'named pipe', kind: 'not-a-file', where: ['train/good'], plant: (f, s) => (execFileSync('mkfifo', [join(f, `${s}.png`)]), join(f, `${s}.png`)) },
];

const REFUSED: Array<Fault & { match: RegExp }> = [
  {
    id: 'truncated PNG',
    match: /truncated or corrupt/,
    where: ['train/good', 'test/good'],
    plant: (f, s) => {
      const b = readFileSync(join(f, '000.png'));
      write(join(f, `${s}.png`), b.subarray(0, Math.floor(b.length / 2)));
      return join(f, `${s}.png`);
    },
  },
  { id: 'empty .png', match: /truncated or corrupt/, where: ['train/good', 'test/spot'], plant: (f, s) => (write(join(f, `${s}.png`), ''), join(f, `${s}.png`)) },
  { id: 'text named .jpg', match: /truncated or corrupt/, where: ['train/good'], plant: (f, s) => (write(join(f, `${s}.jpg`), 'hello'), join(f, `${s}.jpg`)) },
  { id: '30000x30000 PNG', match: /too large \(30000×30000 = 900000000 pixels; limit \d+ pixels\).*UFLOW_MAX_IMAGE_PIXELS/, where: ['train/good', 'test/good'], plant: (f, s) => (write(join(f, `${s}.png`), hugePng()), join(f, `${s}.png`)) },
  {
    id: 'over a lowered pixel limit',
    match: /too large \(40×40 = 1600 pixels; limit 1500 pixels\)/,
    where: ['train/good'],
    env: { UFLOW_MAX_IMAGE_PIXELS: '1500' },
    plant: async (f, s) => (await png(join(f, `${s}.png`), 40, 40), join(f, `${s}.png`)),
  },
];

async function act(dir: string, w: Where, env?: Record<string, string>): Promise<Observed> {
  return w === 'train/good' ? cliTrain(dir, [], env) : cliEvaluate(dir, [], env);
}

const cases: FaultCase[] = [];
for (const f of SKIPPED) {
  for (const w of f.where) {
    NAMES.forEach((name, k) => {
      if (k > 0 && w !== 'train/good') return; // name styles once per fault
      let planted = '';
      cases.push({
        name: `${f.id} in ${w}${k ? ' (odd name)' : ''} is skipped with a warning`,
        expect: 'warn',
        names: () => [planted],
        plant: async (dir) => void (planted = await f.plant(folder(dir, w), name('900_fault'))),
        act: (dir) => act(dir, w, f.env),
        check: (dir) => {
          const r = report(dir, w === 'train/good' ? 'train' : 'evaluate');
          const split = w === 'train/good' ? r.used.train : r.used.test;
          assert.equal(split[w.split('/')[1]!], BASE_COUNTS[w], 'the images used are the good ones only');
          assert.ok(r.issues.some((i: { kind: string; path: string }) => i.kind === f.kind && i.path === planted), `a ${f.kind} issue on ${planted}`);
        },
      });
    });
  }
}
for (const f of REFUSED) {
  for (const w of f.where) {
    let planted = '';
    cases.push({
      name: `${f.id} in ${w} is refused`,
      expect: 'refuse',
      names: () => [planted],
      match: f.match,
      plant: async (dir) => void (planted = await f.plant(folder(dir, w), '900_fault')),
      act: (dir) => act(dir, w, f.env),
      check: (dir) => {
        if (w === 'train/good') {
          const run = runJson(dir, newestRun(dir));
          assert.equal(run.state, 'failed');
          assert.ok(String(run.error).includes(planted), `run.json says why: ${run.error}`);
        } else assert.equal(existsSync(join(dir, '.uflow', 'runs', newestRun(dir), 'evaluation.json')), false, 'no evaluation.json');
      },
    });
  }
}
const ACCEPTED: Array<{ id: string; plant(f: string): Promise<void> }> = [
  { id: 'the dataset as it is', plant: async () => undefined },
  { id: 'an upper-case .PNG', plant: (f) => png(join(f, '900.PNG'), 32, 32, 9) },
  { id: 'a JPEG', plant: async (f) => void (await sharp(Buffer.alloc(32 * 32 * 3, 90), { raw: { width: 32, height: 32, channels: 3 } }).jpeg().toFile(join(f, '900.jpg'))) },
  { id: 'a 16-bit grey PNG', plant: async (f) => void (await sharp(Buffer.alloc(40 * 40 * 2, 7), { raw: { width: 40, height: 40, channels: 1 } }).toColourspace('grey16').png().toFile(join(f, '900.png'))) },
  { id: 'a non-square 48x32 image', plant: (f) => png(join(f, '900.png'), 48, 32, 4) },
  { id: 'a hidden file', plant: async (f) => writeFileSync(join(f, '.DS_Store'), 'x') },
];
for (const a of ACCEPTED) {
  cases.push({
    name: `${a.id} in train/good trains without a warning`,
    expect: 'accept',
    plant: (dir) => a.plant(folder(dir, 'train/good')),
    act: (dir) => cliTrain(dir),
    check: (dir) => assert.deepEqual(report(dir, 'train').issues, []),
  });
}
cases.push({
  name: 'train/good with nothing but skipped files is refused',
  expect: 'refuse',
  names: (dir) => [join(dir, 'data', 'grid', 'train', 'good', 'README.txt')],
  match: /no training images/,
  plant: (dir) => {
    const f = folder(dir, 'train/good');
    execFileSync('rm', ['-f', ...[0, 1, 2, 3].map((i) => join(f, `00${i}.png`))]);
    write(join(f, 'README.txt'), 'x');
    mkdirSync(join(f, 'sub'));
  },
  act: (dir) => cliTrain(dir),
});

category('datasets', cases, { base: async (dir) => void (await baseWithRun(dir)) });
