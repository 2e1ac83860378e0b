import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { UFlowGraph } from '../../models/flows/uflow-graph.js';
import { lpzPerSample, uflowLoss, uflowLossLegacy } from '../../models/train/loss.js';
import { goldenCases, loadGolden, skipReason, type GoldenCase, goldenBackends } from '../helpers/golden.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';

function graphFromManifest(g: GoldenCase, seed = 7): UFlowGraph {
  const m = g.manifest;
  // [h, w] of each level from the case's own inputs (any shape: non-square, non-divisible sizes)
  const sizes = (m.channels as number[]).map((_, s) => {
    const sh = g.shape('data', `input_scale${s + 1}`);
    return [sh[2]!, sh[3]!] as const;
  });
  return new UFlowGraph({ channels: m.channels, sizes, flowSteps: m.flow_steps, seed });
}

function goldenInputs(g: GoldenCase): tf.Tensor4D[] {
  return (g.manifest.channels as number[]).map((_, s) => nchwToNhwc(g.get('data', `input_scale${s + 1}`), g.shape('data', `input_scale${s + 1}`)));
}

for (const name of goldenCases('02_')) {
  for (const backend of goldenBackends()) {
    test(`${name} on ${backend}`, { skip: skipReason() }, async () => {
      await initEngine({ backend });
      const g = loadGolden(name);
      const m = g.manifest;
      const graph = graphFromManifest(g);
      graph.loadStateDict(g.files.weights!, `${g.dir}/weights.safetensors`);

      // the node → module_list table and the permutations
      const blocks = graph.blocks();
      const table = (m.node_order_topological as Array<{ name: string; type: string; module_list_index: number }>).filter((n) => n.type === 'AllInOneBlock');
      assert.deepEqual(blocks.map((b) => [b.name, b.index]), table.map((n) => [n.name, n.module_list_index]));
      for (const b of blocks) {
        const key = `flow.module_list.${b.index}.perm_index`;
        if (g.files.perm_index?.has(key)) assert.deepEqual(b.block.permutation(), Array.from(g.get('perm_index', key)), key);
      }

      const inputs = goldenInputs(g);
      const before = tf.memory().numTensors;
      const seen: string[] = [];
      const inter = g.files.intermediates;
      const { z, logdet } = graph.forward(inputs, (node, outs, logJac) => {
        seen.push(node);
        if (!inter) return;
        outs.forEach((o, k) => {
          const key = `${node}.out${k}`;
          const ref = g.get('intermediates', key);
          const got = nhwcToNchwSync(o);
          assert.deepEqual(got.shape, g.shape('intermediates', key), key);
          assertClose(got.data, ref, { rtol: 1e-4, atol: 1e-4, what: key });
        });
        if (inter.has(`${node}.log_jac`)) assertClose(logJac.dataSync(), g.get('intermediates', `${node}.log_jac`), { rtol: 1e-4, atol: 1e-2, what: `${node}.log_jac` });
      });
      assert.deepEqual(seen, (m.node_order_topological as Array<{ name: string }>).map((n) => n.name));

      z.forEach((zs, s) => {
        const got = nhwcToNchwSync(zs);
        assert.deepEqual(got.shape, m.z_shapes[s]);
        assertClose(got.data, g.get('data', `z_scale${s + 1}`), { rtol: 1e-4, atol: 1e-4, what: `z_scale${s + 1}` });
      });
      assertClose(logdet.dataSync(), g.get('data', 'log_jac_det'), { rtol: 1e-4, atol: 1e-2, what: 'log_jac_det' });
      const lpz = lpzPerSample(z);
      if (m.lpz_per_sample) assertClose(lpz.dataSync(), m.lpz_per_sample, { rtol: 1e-4, atol: 0, what: 'lpz per sample' });
      const loss = uflowLoss(z, logdet);
      const legacy = uflowLossLegacy(z, logdet);
      assertClose([loss.dataSync()[0]!], [m.loss_official_head], { rtol: 1e-4, atol: 0, what: 'loss (official HEAD)' });
      assertClose([legacy.dataSync()[0]!], [m.loss_legacy_sum_over_batch], { rtol: 1e-4, atol: 0, what: 'loss (legacy)' });

      // inverse reconstructs the inputs, with the negated logdet
      const inv = graph.inverse(z);
      const err = Math.max(...inv.features.map((f, s) => maxAbsDiff(f.dataSync(), inputs[s]!.dataSync())));
      assert.ok(err <= Math.max(10 * (m.inverse_check_max_abs_err ?? 0), 1e-4), `inverse error ${err}`);
      assertClose(inv.logdet.dataSync(), Array.from(logdet.dataSync(), (v) => -v), { rtol: 1e-4, atol: 1e-2, what: 'inverse logdet' });

      tf.dispose([...z, logdet, lpz, loss, legacy, ...inv.features, inv.logdet]);
      assert.equal(tf.memory().numTensors, before, 'no tensors leak');
      tf.dispose(inputs);
      graph.dispose();
    });
  }
}
