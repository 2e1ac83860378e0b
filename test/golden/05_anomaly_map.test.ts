import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { anomalyMap, imageScore, probabilityMap } from '../../models/scores/anomaly-map.js';
import { goldenCases, loadGolden, skipReason, goldenBackends } from '../helpers/golden.js';
import { assertClose } from '../helpers/assert-close.js';
import { toHW } from '../../models/size.js';

for (const name of goldenCases('05_')) {
  for (const backend of goldenBackends()) {
    test(`${name} on ${backend}`, { skip: skipReason() }, async () => {
      await initEngine({ backend });
      const g = loadGolden(name);
      const keys = [...g.files.data!.keys()].filter((k) => /^z_scale\d+$/.test(k)).sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)));
      assert.ok(keys.length > 0, 'latents in the case');
      const z = keys.map((k) => nchwToNhwc(g.get('data', k), g.shape('data', k)));
      const refShape = g.shape('data', 'probability_map');
      const size = [refShape[2]!, refShape[3]!] as const;
      if (g.manifest.target_size !== undefined) assert.deepEqual(size, toHW(g.manifest.target_size));
      const before = tf.memory().numTensors;
      const p = probabilityMap(z, size);
      const a = anomalyMap(z, size);
      const score = imageScore(a);
      const pn = nhwcToNchwSync(p);
      assert.deepEqual(pn.shape, refShape);
      assertClose(pn.data, g.get('data', 'probability_map'), { rtol: 1e-5, atol: 1e-6, what: 'probability_map' });
      assertClose(nhwcToNchwSync(a).data, g.get('data', 'anomaly_map'), { rtol: 1e-5, atol: 1e-6, what: 'anomaly_map' });
      assertClose(score.dataSync(), g.get('data', 'image_score'), { rtol: 1e-5, atol: 1e-6, what: 'image_score' });
      tf.dispose([p, a, score]);
      assert.equal(tf.memory().numTensors, before, 'no tensors leak');
      tf.dispose(z);
    });
  }
}
