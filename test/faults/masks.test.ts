/**
 * Fault catalogue: ground-truth masks, checked by `uflow evaluate` of a trained run (and by a
 * training that validates). A mask that is missing, of another size or unreadable refuses the
 * evaluation naming the file; with --allow-mask-problems the evaluation goes on without those
 * images, which the report lists as excluded (and evaluation.json leaves out). A mask that is not
 * binary, empty, or given for a good image is warned about; well-formed variants are accepted.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { category, type FaultCase } from './catalogue.js';
import { baseWithRun, cliEvaluate, cliTrain, maskPng, newestRun, report, write } from './helpers.js';

const gt = (dir: string, name = '000_mask.png') => join(dir, 'data', 'grid', 'ground_truth', 'spot', name);
const img = (dir: string) => join(dir, 'data', 'grid', 'test', 'spot', '000.png');
const square = (x: number, y: number) => (x >= 8 && x < 16 && y >= 8 && y < 16 ? 255 : 0);

interface MaskFault {
  id: string;
  /** The file the message names (the mask, or the image when the mask is missing). */
  named(dir: string): string;
  plant(dir: string): Promise<void> | void;
}

const REFUSING: MaskFault[] = [
  { id: 'a missing mask', named: img, plant: (dir) => rmSync(gt(dir)) },
  { id: 'a mask named wrongly (000-mask.png)', named: img, plant: (dir) => renameSync(gt(dir), gt(dir, '000-mask.png')) },
  { id: 'a 64x64 mask for a 32x32 image', named: gt, plant: (dir) => maskPng(gt(dir), 64, 64, (x, y) => square(x / 2, y / 2)) },
  { id: 'a 16x16 mask for a 32x32 image', named: gt, plant: (dir) => maskPng(gt(dir), 16, 16, (x, y) => square(x * 2, y * 2)) },
  { id: 'a 32x33 mask', named: gt, plant: (dir) => maskPng(gt(dir), 32, 33, square) },
  { id: 'a truncated mask', named: gt, plant: (dir) => write(gt(dir), readFileSync(gt(dir)).subarray(0, 30)) },
  { id: 'an empty mask file', named: gt, plant: (dir) => write(gt(dir), '') },
];

const WARNED: Array<MaskFault & { kind: string }> = [
  { id: 'a mask with background values 1..40', kind: 'mask-not-binary', named: gt, plant: (dir) => maskPng(gt(dir), 32, 32, (x, y) => square(x, y) || 1 + ((x * 7 + y * 13) % 40)) },
  { id: 'an antialiased mask (0/128/255)', kind: 'mask-not-binary', named: gt, plant: (dir) => maskPng(gt(dir), 32, 32, (x, y) => (square(x, y) ? 255 : x === 7 && y >= 8 && y < 16 ? 128 : 0)) },
  { id: 'an all-black mask for a defect image', kind: 'mask-empty', named: gt, plant: (dir) => maskPng(gt(dir), 32, 32, () => 0) },
  {
    id: 'a mask for a good image',
    kind: 'mask-for-good',
    named: (dir) => join(dir, 'data', 'grid', 'ground_truth', 'good', '000_mask.png'),
    plant: (dir) => maskPng(join(dir, 'data', 'grid', 'ground_truth', 'good', '000_mask.png'), 32, 32, square),
  },
];

const ACCEPTED: Array<{ id: string; plant(dir: string): Promise<void> | void }> = [
  { id: 'the masks as they are', plant: () => undefined },
  { id: 'a 0/1 mask', plant: (dir) => maskPng(gt(dir), 32, 32, (x, y) => (square(x, y) ? 1 : 0)) },
  {
    id: 'an RGB 0/255 mask',
    plant: async (dir) => {
      const px = Buffer.alloc(32 * 32 * 3);
      for (let i = 0; i < 32 * 32; i++) px.fill(square(i % 32, Math.floor(i / 32)), i * 3, i * 3 + 3);
      await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(gt(dir) + '.tmp.png');
      renameSync(gt(dir) + '.tmp.png', gt(dir));
    },
  },
  { id: 'a mask named after its image (000.png)', plant: (dir) => renameSync(gt(dir), gt(dir, '000.png')) },
  { id: 'a mask with an upper-case extension (000_mask.PNG)', plant: (dir) => renameSync(gt(dir), gt(dir, '000_mask.PNG')) },
];

const evaluationOf = (dir: string) => join(dir, '.uflow', 'runs', newestRun(dir), 'evaluation.json');

const cases: FaultCase[] = [];
for (const f of REFUSING) {
  cases.push({
    name: `${f.id} refuses the evaluation`,
    expect: 'refuse',
    names: (dir) => [f.named(dir)],
    match: /refuses the evaluation[\s\S]*--allow-mask-problems/,
    plant: f.plant,
    act: (dir) => cliEvaluate(dir),
    check: (dir) => assert.equal(existsSync(evaluationOf(dir)), false, 'no evaluation.json'),
  });
  cases.push({
    name: `${f.id} with --allow-mask-problems: evaluated without that image, listed`,
    expect: 'warn',
    names: (dir) => [f.named(dir), `excluded: 1 image(s): ${img(dir)}`],
    plant: f.plant,
    act: (dir) => cliEvaluate(dir, ['--allow-mask-problems']),
    check: (dir) => {
      const ev = JSON.parse(readFileSync(evaluationOf(dir), 'utf8'));
      assert.deepEqual(ev.images.map((i: { path: string }) => i.path).filter((p: string) => p === img(dir)), [], 'the image is left out');
      assert.equal(ev.images.length, 3);
      const r = report(dir, 'evaluate');
      assert.equal(r.used.test.spot, 1);
      assert.deepEqual(r.issues.filter((i: { effect: string }) => i.effect === 'excluded').map((i: { image: string }) => i.image), [img(dir)]);
    },
  });
}
for (const f of WARNED) {
  cases.push({
    name: `${f.id} is warned about; the evaluation goes on`,
    expect: 'warn',
    names: (dir) => [f.named(dir)],
    plant: f.plant,
    act: (dir) => cliEvaluate(dir),
    check: (dir) => {
      assert.ok(existsSync(evaluationOf(dir)));
      assert.ok(report(dir, 'evaluate').issues.some((i: { kind: string; path: string }) => i.kind === f.kind && i.path === f.named(dir)));
    },
  });
}
for (const a of ACCEPTED) {
  cases.push({
    name: `${a.id}: evaluated without a warning`,
    expect: 'accept',
    plant: a.plant,
    act: (dir) => cliEvaluate(dir),
    check: (dir) => {
      const ev = JSON.parse(readFileSync(evaluationOf(dir), 'utf8'));
      assert.equal(ev.images.length, 4);
      assert.ok(ev.images.find((i: { path: string }) => i.path === img(dir)).maskPath, 'the mask is used');
    },
  });
}
for (const f of REFUSING.slice(0, 2)) {
  cases.push({
    name: `${f.id} in a training that validates: warned, left out of validation`,
    expect: 'warn',
    names: (dir) => [f.named(dir), 'left out of validation'],
    plant: f.plant,
    act: (dir) => cliTrain(dir, ['--validate-every', '1']),
    check: (dir) => assert.equal(report(dir, 'train').used.test.spot, 1),
  });
}

category('masks', cases, { base: async (dir) => void (await baseWithRun(dir)) });
