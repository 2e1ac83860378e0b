import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { AllInOneBlock } from '../../models/flows/allinone-block.js';
import { validateState } from '../../models/flows/state.js';
import { goldenCases, loadGolden, skipReason, goldenBackends } from '../helpers/golden.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';

const BACKENDS = goldenBackends();

for (const name of goldenCases('01_')) {
  for (const backend of BACKENDS) {
    test(`${name} on ${backend}`, { skip: skipReason() }, async () => {
      await initEngine({ backend });
      const g = loadGolden(name);
      const m = g.manifest;
      const inShape = g.shape('data', 'input');
      const channels = inShape[1]!;
      const kernelSize = m.kernel_size ?? g.shape('weights', 'subnet.0.weight')[2];
      const block = new AllInOneBlock({ channels, kernelSize, seed: 123 });
      assert.equal(block.c1, m.split_len1_passive ?? block.c1);
      assert.equal(block.c2, m.split_len2_active ?? block.c2);
      const spec = block.stateSpec().map((s) => ({ key: s.name, shape: s.shape }));
      const get = validateState(g.files.weights!, spec, `${g.dir}/weights.safetensors`);
      block.loadState(get, `${g.dir}/weights.safetensors`);
      const before = tf.memory().numTensors;

      // permutation and activated global scale
      assert.deepEqual(block.permutation(), Array.from(g.get('data', 'perm_index')));
      const gAct = block.globalScaleActivated();
      assertClose(gAct.dataSync(), g.get('data', 'global_scale_activated'), { rtol: 1e-6, atol: 1e-7, what: 'g' });
      gAct.dispose();

      const x = nchwToNhwc(g.get('data', 'input'), inShape);
      const { y, logdet } = block.forward(x);
      const z = nhwcToNchwSync(y);
      assert.deepEqual(z.shape, g.shape('data', 'z'));
      assertClose(z.data, g.get('data', 'z'), { rtol: 1e-4, atol: 1e-5, what: 'z' });
      assertClose(logdet.dataSync(), g.get('data', 'log_jac_det'), { rtol: 1e-4, atol: 1e-3, what: 'log_jac_det' });

      // inverse of our own output reconstructs the input
      const inv = block.inverse(y);
      const err = maxAbsDiff(inv.x.dataSync(), x.dataSync());
      assert.ok(err <= Math.max(10 * (m.inverse_check_max_abs_err ?? 0), 1e-5), `inverse error ${err}`);
      // reverse logdet of the golden z
      const zg = nchwToNhwc(g.get('data', 'z'), g.shape('data', 'z'));
      const rev = block.inverse(zg);
      assertClose(rev.logdet.dataSync(), m.log_jac_det_reverse, { rtol: 1e-4, atol: 1e-3, what: 'reverse log_jac_det' });
      assertClose(rev.x.dataSync(), x.dataSync(), { rtol: 1e-4, atol: 1e-4, what: 'inverse of golden z' });

      tf.dispose([x, y, logdet, inv.x, inv.logdet, zg, rev.x, rev.logdet]);
      assert.equal(tf.memory().numTensors, before, 'forward/inverse leak no tensors');
      block.dispose();
    });
  }
}
