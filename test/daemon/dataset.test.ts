/** uflow/inspectDataset on generated datasets, through the real daemon. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ErrorCodes, type DatasetInfo } from '../../server/protocol.js';
import { writeTinyCategory } from './fixtures.js';
import { rejectsWith, startDaemon, tempDir } from './harness.js';

test('inspectDataset: an MVTec root, one category, a corrupt image, a missing folder', async () => {
  const { dir, cleanup } = tempDir();
  const root = join(dir, 'mvtec');
  await writeTinyCategory(root, 'carpet', { size: 16, trainGood: 3, testGood: 1, defects: 2 });
  await writeTinyCategory(root, 'grid', { size: 16, trainGood: 2, testGood: 1, defects: 1, corruptTrainImage: true });
  const d = await startDaemon({ workspaceFolders: [dir] });
  try {
    const info = (await d.conn.sendRequest('uflow/inspectDataset', { path: root })) as DatasetInfo;
    assert.equal(info.layout, 'mvtec-root');
    assert.deepEqual(info.categories.map((c) => c.name), ['carpet', 'grid']);
    const carpet = info.categories[0]!;
    assert.equal(carpet.trainGood, 3);
    assert.equal(carpet.testGood, 1);
    assert.deepEqual(carpet.defects, { spot: 2 });
    assert.equal(carpet.masks, 2);
    const bad = info.problems.filter((p) => p.severity === 'error');
    assert.equal(bad.length, 1, JSON.stringify(info.problems));
    assert.match(bad[0]!.path, /900_corrupt\.png$/);

    const one = (await d.conn.sendRequest('uflow/inspectDataset', { path: join(root, 'carpet') })) as DatasetInfo;
    assert.equal(one.layout, 'mvtec-category');
    assert.equal(one.categories.length, 1);

    await rejectsWith(d.conn.sendRequest('uflow/inspectDataset', { path: join(dir, 'nope') }), ErrorCodes.BadDataset, /no such folder/);
  } finally {
    await d.close();
    cleanup();
  }
});
