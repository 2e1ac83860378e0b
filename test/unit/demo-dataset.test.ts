import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DEMO_DEFECTS, generateDemoDataset, renderDemoSample } from '../../models/data/demo-dataset.js';
import { inspectDataset, listSplit } from '../../models/data/dataset.js';
import { loadMaskFull, decodeImage } from '../../models/data/images.js';

const base = mkdtempSync(join(tmpdir(), 'uflow-demo-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));

const small = { seed: 3, size: 64, counts: { train: 4, testGood: 2, defects: { hole: 2, scratch: 2, stain: 2 } } };

function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

test('same seed → same bytes; another seed → other images; MVTec layout that inspects clean', async () => {
  const a = generateDemoDataset(join(base, 'a'), small);
  const b = generateDemoDataset(join(base, 'b'), small);
  assert.equal(a, join(base, 'a', 'demo_tile'));
  const fa = files(a);
  const fb = files(b);
  assert.equal(fa.size, 4 + 2 + 6 + 6 + 1);
  assert.deepEqual([...fa.keys()].sort(), [...fb.keys()].sort());
  for (const [k, v] of fa) assert.ok(v.equals(fb.get(k)!), k);
  const c = generateDemoDataset(join(base, 'c'), { ...small, seed: 4 });
  assert.ok(!readFileSync(join(c, 'train/good/000.png')).equals(fa.get('train/good/000.png')!));
  const info = await inspectDataset(a);
  assert.deepEqual(info.problems, []);
  assert.deepEqual(info.categories[0], { name: 'demo_tile', path: a, trainGood: 4, testGood: 2, defects: { hole: 2, scratch: 2, stain: 2 }, masks: 6 });
  const img = await decodeImage(join(a, 'test/hole/000.png'));
  assert.deepEqual([img.width, img.height], [64, 64]);
});

test('a second call with the same parameters does nothing; other parameters regenerate; foreign folders are refused', () => {
  const root = join(base, 'stamp');
  const dir = generateDemoDataset(root, small);
  const f = join(dir, 'train/good/000.png');
  const m0 = statSync(f).mtimeMs;
  const ino = statSync(f).ino;
  assert.equal(generateDemoDataset(root, small), dir);
  assert.equal(statSync(f).mtimeMs, m0);
  assert.equal(statSync(f).ino, ino);
  generateDemoDataset(root, { ...small, counts: { ...small.counts, train: 5 } });
  assert.equal(readdirSync(join(dir, 'train/good')).length, 5);
  assert.deepEqual(readdirSync(root), ['demo_tile']); // no temporary folders left
  const foreign = join(base, 'foreign', 'demo_tile');
  mkdirSync(foreign, { recursive: true });
  writeFileSync(join(foreign, 'mine.txt'), 'x');
  assert.throws(() => generateDemoDataset(join(base, 'foreign'), small), {
    message: `${foreign}: exists and was not made by the demo generator: remove it or choose another folder`,
  });
  assert.throws(() => generateDemoDataset(root, { size: 8 }), { message: 'demo dataset: size must be an integer from 32 to 1024, got 8' });
  assert.throws(() => generateDemoDataset(root, { category: '../x' }), { message: 'demo dataset: category must be a plain folder name (letters, digits, _ . -), got "../x"' });
});

test('defects change exactly the pixels of their mask, visibly', () => {
  for (const defect of DEMO_DEFECTS) {
    for (let i = 0; i < 4; i++) {
      const key = `test/${defect}/${i}`;
      const good = renderDemoSample(11, 128, key);
      const bad = renderDemoSample(11, 128, key, defect);
      let area = 0;
      let minInside = 255;
      let sumInside = 0;
      for (let p = 0; p < bad.mask.length; p++) {
        const d = Math.max(...[0, 1, 2].map((c) => Math.abs(bad.rgb[p * 3 + c] - good.rgb[p * 3 + c])));
        if (bad.mask[p]) {
          area++;
          minInside = Math.min(minInside, d);
          sumInside += d;
        } else assert.equal(d, 0, `${key}: pixel ${p} outside the mask changed`);
      }
      assert.ok(area >= 15 && area < 128 * 128 * 0.1, `${key}: mask area ${area}`);
      assert.ok(minInside >= 5, `${key}: a mask pixel changed by only ${minInside}`);
      assert.ok(sumInside / area >= 20, `${key}: mean change ${sumInside / area}`);
    }
  }
  // good samples have empty masks; train and test images differ
  const g = renderDemoSample(11, 128, 'train/0');
  assert.ok(g.mask.every((v) => v === 0));
  assert.ok(!Buffer.from(g.rgb).equals(Buffer.from(renderDemoSample(11, 128, 'train/1').rgb)));
});

test('written masks match the rendering and pair with their images', async () => {
  const dir = generateDemoDataset(join(base, 'masks'), small);
  for (const item of listSplit(dir, 'test').filter((t) => t.label === 1)) {
    assert.ok(item.maskPath, item.path);
    const m = await loadMaskFull(item.maskPath!);
    const [, defect, idx] = /test\/(\w+)\/(\d+)\.png$/.exec(item.path)!;
    const s = renderDemoSample(small.seed, small.size, `test/${defect}/${Number(idx)}`, defect as (typeof DEMO_DEFECTS)[number]);
    assert.deepEqual(m.data, s.mask, item.path);
  }
});
