/** Random-weight torchvision ResNet state dicts for tests and benches (no download needed). */
import { f32, type TensorMap } from '../../models/io/safetensors.js';

/** A torchvision ResNet state dict (layers 1–3) with random weights: He-uniform convs, BatchNorm statistics near the identity. */
export function resnetStateDict(kind: 'basic' | 'bottleneck', blocks: number[], planes: number[], width: (p: number) => number, seed: number): TensorMap {
  let st = seed >>> 0;
  const rand = () => ((st = (Math.imul(st, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const m: TensorMap = new Map();
  const conv = (k: string, o: number, i: number, s: number) => {
    const a = Math.sqrt(6 / (i * s * s));
    m.set(`${k}.weight`, f32([o, i, s, s], Float32Array.from({ length: o * i * s * s }, () => a * rand())));
  };
  const bn = (k: string, c: number) => {
    m.set(`${k}.weight`, f32([c], Float32Array.from({ length: c }, () => 1 + 0.2 * rand())));
    m.set(`${k}.bias`, f32([c], Float32Array.from({ length: c }, () => 0.1 * rand())));
    m.set(`${k}.running_mean`, f32([c], Float32Array.from({ length: c }, () => 0.1 * rand())));
    m.set(`${k}.running_var`, f32([c], Float32Array.from({ length: c }, () => 1 + 0.2 * rand())));
  };
  conv('conv1', 64, 3, 7);
  bn('bn1', 64);
  let inC = 64;
  const expansion = kind === 'bottleneck' ? 4 : 1;
  planes.forEach((p, s) => {
    for (let b = 0; b < blocks[s]!; b++) {
      const k = `layer${s + 1}.${b}`;
      const out = p * expansion;
      if (kind === 'basic') {
        conv(`${k}.conv1`, p, inC, 3);
        bn(`${k}.bn1`, p);
        conv(`${k}.conv2`, p, p, 3);
        bn(`${k}.bn2`, p);
      } else {
        const w = width(p);
        conv(`${k}.conv1`, w, inC, 1);
        bn(`${k}.bn1`, w);
        conv(`${k}.conv2`, w, w, 3);
        bn(`${k}.bn2`, w);
        conv(`${k}.conv3`, out, w, 1);
        bn(`${k}.bn3`, out);
      }
      if (b === 0 && (s > 0 || inC !== out)) {
        conv(`${k}.downsample.0`, out, inC, 1);
        bn(`${k}.downsample.1`, out);
      }
      inC = out;
    }
  });
  return m;
}

/** resnet18's layers 1–3 with its real shapes (2.8 M parameters), random weights. */
export const resnet18StateDict = (seed = 5): TensorMap => resnetStateDict('basic', [2, 2, 2], [64, 128, 256], (p) => p, seed);
