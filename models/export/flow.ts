/**
 * The flows as ONNX, NCHW: FrEIA's AllInOneBlock as models/flows/allinone-block.ts computes it
 * (forward only: the latents; the log-determinant is a training quantity and is not exported), and
 * U-Flow's U-shaped graph (models/flows/uflow-graph.ts) from its stage layout.
 */
import * as tf from '@tensorflow/tfjs-core';
import { AFFINE_CLAMPING, type AllInOneBlock } from '../flows/allinone-block.js';
import type { UFlowGraph } from '../flows/uflow-graph.js';
import { values } from '../flows/state.js';
import type { GraphBuilder } from './graph.js';
import { concatChannels, conv, mulScalar, samePads, splitChannels } from './layers.js';

/**
 * One AllInOneBlock forward: affine coupling (clamp·tanh of the first half of 0.1·subnet(x1),
 * shift by the second half), the global affine with g = 0.1·softplus_0.5(γ) evaluated at export by
 * the block itself, then the hard permutation as a Gather on the channel axis.
 */
export function emitAllInOne(g: GraphBuilder, x: string, block: AllInOneBlock, name: string): string {
  const { c1, c2, kernelSize: k, channels: c } = block;
  const state = new Map(block.state());
  const t = (key: string) => values(state.get(key)!);
  const [x1, x2] = splitChannels(g, x, [c1, c2], `${name}.split`) as [string, string];
  const h = g.op('Relu', [conv(g, x1, { data: t('subnet.0.weight'), dims: state.get('subnet.0.weight')!.shape }, t('subnet.0.bias'), `${name}.subnet.0`, { pads: samePads(k) })], {}, `${name}.subnet.1`);
  const a = mulScalar(g, conv(g, h, { data: t('subnet.2.weight'), dims: state.get('subnet.2.weight')!.shape }, t('subnet.2.bias'), `${name}.subnet.2`, { pads: samePads(k) }), 0.1, `${name}.a`);
  const [aS, aT] = splitChannels(g, a, [c2, c2], `${name}.a_split`) as [string, string];
  const s = mulScalar(g, g.op('Tanh', [aS], {}, `${name}.tanh`), AFFINE_CLAMPING, `${name}.s`);
  const y2 = g.op('Add', [g.op('Mul', [x2, g.op('Exp', [s], {}, `${name}.exp_s`)], {}, `${name}.x2_scaled`), aT], {}, `${name}.y2`);
  const u = concatChannels(g, [x1, y2], `${name}.coupled`);
  const scale = tf.tidy(() => Float32Array.from(block.globalScaleActivated().dataSync() as Float32Array));
  const gs = g.weight(`${name}.global_scale_activated`, scale, [1, c, 1, 1]);
  const go = g.weight(`${name}.global_offset`, t('global_offset'), [1, c, 1, 1]);
  const v = g.op('Add', [g.op('Mul', [u, gs], {}, `${name}.global_scaled`), go], {}, `${name}.global_affine`);
  return g.op('Gather', [v, g.int64(block.permutation(), `${name}.perm`)], { axis: 1 }, `${name}.permuted`);
}

/**
 * U-Flow's graph on NCHW features (finest first): stages coarsest first, each a chain of blocks,
 * then a split into (U, z) with U upsampled by IRevNet's inverse space-to-depth — ONNX
 * DepthToSpace in CRD order, out[c, 2i+dy, 2j+dx] = in[4c + 2dy + dx, i, j] — and concatenated
 * after the next finer features. Returns the latents, finest first.
 */
export function emitUFlowGraph(g: GraphBuilder, features: readonly string[], flow: UFlowGraph): string[] {
  const stages = flow.stageLayout();
  const S = stages.length;
  if (features.length !== S) throw new Error(`ONNX export: the flow has ${S} levels, the backbone gave ${features.length}`);
  const z: string[] = new Array(S);
  let x = features[S - 1]!;
  stages.forEach((st, j) => {
    st.blocks.forEach((b, k) => {
      x = emitAllInOne(g, x, b, `flow.stage${j}.step${k}`);
    });
    if (st.split) {
      const [u, zs] = splitChannels(g, x, [st.split.up, st.split.out], `flow.split_${st.level + 1}`) as [string, string];
      z[st.level] = zs;
      const up = g.op('DepthToSpace', [u], { blocksize: 2, mode: 'CRD' }, `flow.up_${st.level + 1}`);
      x = concatChannels(g, [features[st.level - 1]!, up], `flow.cat_${st.level}`);
    } else {
      z[st.level] = x;
    }
  });
  return z;
}
