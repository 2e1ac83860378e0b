/**
 * The anomaly maps as ONNX (models/scores/anomaly-map.ts, fastflow-map.ts), NCHW latents in,
 * [B, 1, Th, Tw] out, plus the image score (max over the map).
 *   U-Flow:   1 − mean_s resize(exp(−0.5 · mean_c z_s²))          in [0, 1]
 *   FastFlow: mean_l resize(−exp(−0.5 · mean_c z_l²))             in [−1, 0]
 * The resize is bilinear with half-pixel centres (align_corners=False); a latent already at Th×Tw is
 * not resized (as resizeBilinearTorch).
 */
import type { GraphBuilder } from './graph.js';
import { mulScalar, resizeBilinear } from './layers.js';

/** exp(−0.5 · mean_c z²): [B, C, h, w] → [B, 1, h, w]. */
function scaleProbability(g: GraphBuilder, z: string, name: string): string {
  const msq = g.op('ReduceMean', [g.op('Mul', [z, z], {}, `${name}.z2`)], { axes: [1], keepdims: 1 }, `${name}.mean_z2`);
  return g.op('Exp', [mulScalar(g, msq, -0.5, `${name}.half`)], {}, `${name}.p`);
}

function resized(g: GraphBuilder, x: string, sizes: ReadonlyArray<readonly [number, number]>, s: number, target: readonly [number, number], name: string): string {
  const [h, w] = sizes[s]!;
  return h === target[0] && w === target[1] ? x : resizeBilinear(g, x, [target[0], target[1]], name);
}

/**
 * The model's anomaly map [B, 1, Th, Tw] and image score [B].
 * `latentSizes`: [h, w] of each latent (static: the Resize is skipped where no resize is needed).
 */
export function emitAnomalyMap(
  g: GraphBuilder,
  kind: 'uflow' | 'fastflow',
  z: readonly string[],
  latentSizes: ReadonlyArray<readonly [number, number]>,
  target: readonly [number, number],
): { map: string; score: string } {
  if (z.length === 0) throw new Error('ONNX export: no latents to make a map of');
  const maps = z.map((zs, s) => {
    const p = scaleProbability(g, zs, `map.level${s}`);
    const v = kind === 'fastflow' ? g.op('Neg', [p], {}, `map.level${s}.neg_p`) : p;
    return resized(g, v, latentSizes, s, target, `map.level${s}.resized`);
  });
  const sum = maps.length === 1 ? maps[0]! : g.op('Sum', maps, {}, 'map.sum');
  const mean = g.op('Div', [sum, g.scalar(maps.length)], {}, 'map.mean');
  const map = kind === 'fastflow' ? mean : g.op('Sub', [g.scalar(1), mean], {}, 'map.anomaly');
  const score = g.op('ReduceMax', [map], { axes: [1, 2, 3], keepdims: 0 }, 'map.score');
  return { map, score };
}
