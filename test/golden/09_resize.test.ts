// Golden 09 `resize.safetensors`: MS-CaiT's scale-2 input, F.interpolate(normalised, size,
// mode='bicubic', align_corners=True). Sizes come from the tensors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { resizeBicubic } from '../../models/ops/resize.js';
import { normalizeImagenet } from '../../models/ops/image-norm.js';
import { goldenCases, loadGolden, skipReason, goldenBackends } from '../helpers/golden.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';

for (const name of goldenCases('09_')) {
  for (const backend of goldenBackends()) {
    test(`${name} resize on ${backend}`, { skip: skipReason() }, async (t) => {
      await initEngine({ backend });
      const g = loadGolden(name);
      if (!g.files.resize) return t.skip('this case has no resize.safetensors');
      const before = tf.memory().numTensors;
      const get = (k: string) => ({ data: g.get('resize', k), shape: g.shape('resize', k) });
      const raw = get('image_raw_0_1');
      const normed = get('input_normalized');
      const expected = get('resized');
      const [, , oh, ow] = expected.shape as [number, number, number, number];
      const img = nchwToNhwc(raw.data, raw.shape);
      const n = normalizeImagenet(img);
      assertClose(nhwcToNchwSync(n).data, normed.data, { rtol: 1e-6, atol: 1e-6, what: 'input_normalized' });
      const x = nchwToNhwc(normed.data, normed.shape);
      const y = resizeBicubic(x, [oh, ow], true);
      const got = nhwcToNchwSync(y);
      assert.deepEqual(got.shape, expected.shape);
      assertClose(got.data, expected.data, { rtol: 1e-5, atol: 1e-5, what: `${name} bicubic resize` });
      if (process.env.UFLOW_TEST_VERBOSE) console.log(`${name} bicubic on ${backend}: max |diff| ${maxAbsDiff(got.data, expected.data).toExponential(2)}`);
      tf.dispose([img, n, x, y]);
      assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
    });
  }
}
