import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { IRevNetUpsampling, downsampleKernel } from '../../models/flows/irevnet-upsampling.js';
import { goldenCases, loadGolden, skipReason, goldenBackends } from '../helpers/golden.js';

for (const name of goldenCases('03_')) {
  for (const backend of goldenBackends()) {
    test(`${name} on ${backend}`, { skip: skipReason() }, async () => {
      await initEngine({ backend });
      const g = loadGolden(name);
      const inShape = g.shape('data', 'input');
      const up = new IRevNetUpsampling(inShape[1]!);
      const x = nchwToNhwc(g.get('data', 'input'), inShape);
      const y = up.forward(x);
      const out = nhwcToNchwSync(y);
      assert.deepEqual(out.shape, g.shape('data', 'output'));
      assert.deepEqual(Array.from(out.data), Array.from(g.get('data', 'output')), 'upsampling is exact');
      const back = up.inverse(y);
      assert.deepEqual(Array.from(back.dataSync()), Array.from(x.dataSync()), 'inverse is exact');
      // the state entry FrEIA holds
      const state = up.state();
      assert.equal(state.length, 1);
      const [key, kernel] = state[0]!;
      assert.equal(key, 'downsample_kernel');
      assert.deepEqual(kernel.shape, g.shape('data', 'downsample_kernel'));
      assert.deepEqual(Array.from(kernel.data as Float32Array), Array.from(g.get('data', 'downsample_kernel')));
      assert.deepEqual(Array.from(downsampleKernel(inShape[1]!)), Array.from(g.get('data', 'downsample_kernel')));
      tf.dispose([x, y, back]);
    });
  }
}
