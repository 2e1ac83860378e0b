import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng } from '../../models/data/render.js';
import { datasetFingerprint, detectLayout, inspectDataset, listSplit } from '../../models/data/dataset.js';
import type { DatasetProblem } from '../../server/protocol.js';

const base = mkdtempSync(join(tmpdir(), 'uflow-dataset-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));
let n = 0;
const fresh = (name = 'cat') => {
  const d = join(base, `d${n++}`, name);
  mkdirSync(d, { recursive: true });
  return d;
};

function png(path: string, w = 8, h = 8, value = 120): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, encodePng(new Uint8Array(w * h * 3).fill(value), w, h, 3));
}

function mask(path: string, w = 8, h = 8): void {
  mkdirSync(dirname(path), { recursive: true });
  const m = new Uint8Array(w * h);
  m[0] = 255;
  writeFileSync(path, encodePng(m, w, h, 1));
}

/** A small valid MVTec category. */
function category(root: string): string {
  png(join(root, 'train/good/000.png'));
  png(join(root, 'train/good/001.png'));
  png(join(root, 'test/good/000.png'));
  png(join(root, 'test/scratch/000.png'));
  png(join(root, 'test/scratch/001.png'));
  png(join(root, 'test/hole/000.png'));
  mask(join(root, 'ground_truth/scratch/000_mask.png'));
  mask(join(root, 'ground_truth/scratch/001_mask.png'));
  mask(join(root, 'ground_truth/hole/000_mask.png'));
  return root;
}

const msgs = (ps: DatasetProblem[]) => ps.map((p) => `${p.severity} ${p.message}`);

test('a valid MVTec category: counts, no problems, ordered listing with masks', async () => {
  const cat = category(fresh('carpet'));
  const info = await inspectDataset(cat);
  assert.equal(info.layout, 'mvtec-category');
  assert.deepEqual(info.problems, []);
  assert.deepEqual(info.categories, [{ name: 'carpet', path: cat, trainGood: 2, testGood: 1, defects: { hole: 1, scratch: 2 }, masks: 3 }]);
  assert.deepEqual(
    listSplit(cat, 'train').map((i) => i.path),
    [join(cat, 'train/good/000.png'), join(cat, 'train/good/001.png')],
  );
  assert.deepEqual(listSplit(cat, 'test'), [
    { path: join(cat, 'test/good/000.png'), defect: 'good', label: 0 },
    { path: join(cat, 'test/hole/000.png'), defect: 'hole', label: 1, maskPath: join(cat, 'ground_truth/hole/000_mask.png') },
    { path: join(cat, 'test/scratch/000.png'), defect: 'scratch', label: 1, maskPath: join(cat, 'ground_truth/scratch/000_mask.png') },
    { path: join(cat, 'test/scratch/001.png'), defect: 'scratch', label: 1, maskPath: join(cat, 'ground_truth/scratch/001_mask.png') },
  ]);
});

test('an MVTec root lists its categories; a sub-folder that looks like a category without train/good is an error', async () => {
  const root = fresh('root');
  category(join(root, 'tile'));
  category(join(root, 'bottle'));
  png(join(root, 'broken/test/good/000.png'));
  mkdirSync(join(root, 'emptycat'));
  writeFileSync(join(root, 'README.md'), 'notes');
  const info = await inspectDataset(root);
  assert.equal(info.layout, 'mvtec-root');
  assert.deepEqual(info.categories.map((c) => c.name), ['bottle', 'tile']);
  assert.deepEqual(msgs(info.problems), [
    `error ${join(root, 'broken')}: no train/good folder: an MVTec category needs broken/train/good/*.png (or point at a plain folder of normal images)`,
    `warning ${join(root, 'emptycat')}: empty folder: add images or remove the folder`,
  ]);
  assert.deepEqual(detectLayout(root).categories, [join(root, 'bottle'), join(root, 'tile')]);
});

test('a plain folder of images is a train-only category; non-image files are skipped with a warning', async () => {
  const dir = fresh('normals');
  png(join(dir, 'b.png'));
  png(join(dir, 'a.png'));
  writeFileSync(join(dir, 'notes.txt'), 'hello');
  writeFileSync(join(dir, '.DS_Store'), 'x');
  const info = await inspectDataset(dir);
  assert.equal(info.layout, 'folder');
  assert.deepEqual(info.categories, [{ name: 'normals', path: dir, trainGood: 2, testGood: 0, defects: {}, masks: 0 }]);
  assert.deepEqual(msgs(info.problems), [
    `warning ${join(dir, 'notes.txt')}: not an image (expected .png, .jpg, .jpeg, .bmp, .tif, .tiff): skipped`,
  ]);
  assert.deepEqual(listSplit(dir, 'train').map((i) => i.path), [join(dir, 'a.png'), join(dir, 'b.png')]);
  assert.deepEqual(listSplit(dir, 'test'), []);
});

test('every problem case has its exact message', async () => {
  const cat = category(fresh('wood'));
  // truncated PNG in train/good
  const full = encodePng(new Uint8Array(16 * 16 * 3).map((_, i) => (i * 37) % 256), 16, 16, 3);
  writeFileSync(join(cat, 'train/good/002.png'), full.subarray(0, 40));
  // a text file named .png in test/good
  writeFileSync(join(cat, 'test/good/001.png'), 'not an image at all\n');
  // a non-image file in train/good
  writeFileSync(join(cat, 'train/good/Thumbs.db'), 'x');
  // a defect image without its mask
  png(join(cat, 'test/scratch/002.png'));
  // a mask whose size differs from its image
  png(join(cat, 'test/hole/001.png'), 8, 8);
  mask(join(cat, 'ground_truth/hole/001_mask.png'), 10, 6);
  // an empty defect folder
  mkdirSync(join(cat, 'test/crack'));
  // a stray file directly in test/
  png(join(cat, 'test/loose.png'));
  const info = await inspectDataset(cat);
  const c = info.categories[0];
  assert.deepEqual([c.trainGood, c.testGood, c.defects, c.masks], [3, 2, { hole: 2, scratch: 3 }, 4]);
  assert.deepEqual(msgs(info.problems), [
    `error ${join(cat, 'ground_truth/hole/001_mask.png')}: mask is 10×6 but its image ${join(cat, 'test/hole/001.png')} is 8×8: make the mask the same size as the image`,
    `warning ${join(cat, 'test/crack')}: empty folder: add images or remove the folder`,
    `error ${join(cat, 'test/good/001.png')}: cannot be decoded as an image (truncated or corrupt): replace or remove the file`,
    `warning ${join(cat, 'test/loose.png')}: test images go in test/good or test/<defect>/: move it into one (skipped)`,
    `warning ${join(cat, 'test/scratch/002.png')}: defect image without a mask: expected ${join(cat, 'ground_truth/scratch/002_mask.png')} (white = defect); add it or remove the image`,
    `error ${join(cat, 'train/good/002.png')}: cannot be decoded as an image (truncated or corrupt): replace or remove the file`,
    `warning ${join(cat, 'train/good/Thumbs.db')}: not an image (expected .png, .jpg, .jpeg, .bmp, .tif, .tiff): skipped`,
  ]);
  assert.ok(info.problems.every((p) => p.message.startsWith(p.path + ': ')));
  // the listing agrees with the counts and leaves the mask out where it is missing
  const t = listSplit(cat, 'test');
  assert.equal(t.length, 2 + 2 + 3);
  assert.deepEqual(t.find((i) => i.path.endsWith('scratch/002.png')), { path: join(cat, 'test/scratch/002.png'), defect: 'scratch', label: 1 });
});

test('no train/good, empty train/good, an empty dataset folder, a missing path, a file path', async () => {
  const noTrain = fresh('grid');
  png(join(noTrain, 'test/good/000.png'));
  let info = await inspectDataset(noTrain);
  assert.equal(info.layout, 'mvtec-category');
  assert.deepEqual(msgs(info.problems), [
    `error ${noTrain}: no train/good folder: an MVTec category needs grid/train/good/*.png (or point at a plain folder of normal images)`,
  ]);
  const emptyTrain = fresh('leather');
  mkdirSync(join(emptyTrain, 'train/good'), { recursive: true });
  png(join(emptyTrain, 'test/good/000.png'));
  info = await inspectDataset(emptyTrain);
  assert.deepEqual(msgs(info.problems), [`error ${join(emptyTrain, 'train/good')}: empty folder: put the normal (defect-free) training images here`]);
  const onlyTrain = fresh('zipper');
  png(join(onlyTrain, 'train/good/000.png'));
  info = await inspectDataset(onlyTrain);
  assert.deepEqual(msgs(info.problems), [
    `warning ${onlyTrain}: no test folder: evaluation needs test/good and test/<defect> images (training works without)`,
  ]);
  const empty = fresh('nothing');
  info = await inspectDataset(empty);
  assert.deepEqual([info.layout, info.categories], ['folder', []]);
  assert.deepEqual(msgs(info.problems), [
    `error ${empty}: empty folder: add normal images, or an MVTec category (<category>/train/good, test/<defect>, ground_truth/<defect>)`,
  ]);
  const docs = fresh('docs');
  writeFileSync(join(docs, 'a.txt'), 'x');
  info = await inspectDataset(docs);
  assert.deepEqual(msgs(info.problems), [
    `error ${docs}: no train/good folder: an MVTec category needs docs/train/good/*.png (or point at a plain folder of normal images)`,
  ]);
  const missing = join(base, 'does-not-exist');
  await assert.rejects(inspectDataset(missing), { name: 'DatasetError', message: `${missing}: no such folder: check the dataset path` });
  const file = join(docs, 'a.txt');
  await assert.rejects(inspectDataset(file), {
    message: `${file}: not a folder: point at a dataset folder (an MVTec root, an MVTec category or a folder of images)`,
  });
});

test('JPEG images with PNG masks (magnetic_tile style) pair up', async () => {
  const cat = fresh('tiles');
  png(join(cat, 'train/good/000.png'));
  const jpg = join(cat, 'test/crack/007.jpg');
  mkdirSync(dirname(jpg), { recursive: true });
  const sharp = (await import('sharp')).default;
  writeFileSync(jpg, await sharp(Buffer.alloc(12 * 9 * 3, 90), { raw: { width: 12, height: 9, channels: 3 } }).jpeg().toBuffer());
  mask(join(cat, 'ground_truth/crack/007_mask.png'), 12, 9);
  const info = await inspectDataset(cat);
  assert.deepEqual(info.problems, []);
  assert.equal(info.categories[0].masks, 1);
  assert.equal(listSplit(cat, 'test')[0].maskPath, join(cat, 'ground_truth/crack/007_mask.png'));
});

test('datasetFingerprint changes when a file is added, touched or resized, and only then', () => {
  const cat = category(fresh('fp'));
  const a = datasetFingerprint(cat);
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.equal(datasetFingerprint(cat), a);
  writeFileSync(join(cat, '.hidden'), 'ignored');
  assert.equal(datasetFingerprint(cat), a);
  const f = join(cat, 'train/good/000.png');
  utimesSync(f, new Date(2001, 1, 1), new Date(2001, 1, 1));
  const b = datasetFingerprint(cat);
  assert.notEqual(b, a);
  png(join(cat, 'train/good/002.png'));
  assert.notEqual(datasetFingerprint(cat), b);
});

// ---------------------------------------------------------------------------------------------
// The shared real datasets (skipped when absent)

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const datasets = process.env.UFLOW_DATASETS_DIR ?? resolve(repoRoot, '../shared/datasets');
const skip = existsSync(join(datasets, 'magnetic_tile')) ? false : `shared datasets not found at ${datasets} (set UFLOW_DATASETS_DIR)`;

test('magnetic_tile: counts match datasets/README.md, fast header-only inspection', { skip }, async (t) => {
  const t0 = performance.now();
  const info = await inspectDataset(join(datasets, 'magnetic_tile'));
  const ms = performance.now() - t0;
  t.diagnostic(`inspected 1728 files in ${ms.toFixed(0)} ms`);
  assert.equal(info.layout, 'mvtec-category');
  assert.deepEqual(info.problems, []);
  assert.deepEqual(info.categories[0], {
    name: 'magnetic_tile',
    path: join(datasets, 'magnetic_tile'),
    trainGood: 762,
    testGood: 190,
    defects: { blowhole: 115, break: 85, crack: 57, fray: 32, uneven: 99 },
    masks: 388,
  });
  assert.ok(ms < 5000, `inspection took ${ms} ms`);
  const test = listSplit(join(datasets, 'magnetic_tile'), 'test');
  assert.equal(test.length, 190 + 388);
  assert.ok(test.filter((i) => i.label === 1).every((i) => i.maskPath?.endsWith('_mask.png') && i.path.endsWith('.jpg')));
});

test('metal_plate and the datasets root', { skip }, async () => {
  const info = await inspectDataset(join(datasets, 'metal_plate'));
  assert.deepEqual(info.problems, []);
  assert.deepEqual(
    [info.categories[0].trainGood, info.categories[0].testGood, info.categories[0].defects, info.categories[0].masks],
    [60, 20, { defect: 71 }, 71],
  );
  const root = detectLayout(datasets);
  assert.equal(root.layout, 'mvtec-root');
  assert.deepEqual(root.categories, [join(datasets, 'magnetic_tile'), join(datasets, 'metal_plate')]);
});
