/** Tiny random CaiT / DeiT state dicts with timm names (tests of the ViT backbones and of U-Flow checkpoints that hold them). */
import type { RawTensor, TensorMap } from '../../models/io/safetensors.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export function randT(shape: number[], r: () => number, scale = 0.3, offset = 0): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = offset + (r() * 2 - 1) * scale;
  return { dtype: 'F32', shape, data };
}

export interface VitCfg {
  img: number;
  patch: number;
  embed: number;
  heads: number;
  depth: number;
  kind: 'cait' | 'deit';
}

export function vitStateDict(cfg: VitCfg, seed: number, prefix = ''): TensorMap {
  const r = rng(seed);
  const { embed: c, heads: h, patch: p } = cfg;
  const n = (cfg.img / p) ** 2 + (cfg.kind === 'deit' ? 2 : 0);
  const m = new Map<string, RawTensor>();
  const set = (k: string, t: RawTensor) => m.set(prefix + k, t);
  set('patch_embed.proj.weight', randT([c, 3, p, p], r, 0.1));
  set('patch_embed.proj.bias', randT([c], r, 0.1));
  set('pos_embed', randT([1, n, c], r, 0.5));
  set('cls_token', randT([1, 1, c], r, 0.5));
  if (cfg.kind === 'deit') set('dist_token', randT([1, 1, c], r, 0.5));
  for (let i = 0; i < cfg.depth; i++) {
    const b = `blocks.${i}.`;
    set(b + 'norm1.weight', randT([c], r, 0.2, 1));
    set(b + 'norm1.bias', randT([c], r, 0.1));
    set(b + 'attn.qkv.weight', randT([3 * c, c], r, 0.4));
    set(b + 'attn.qkv.bias', randT([3 * c], r, 0.1));
    set(b + 'attn.proj.weight', randT([c, c], r, 0.3));
    set(b + 'attn.proj.bias', randT([c], r, 0.1));
    if (cfg.kind === 'cait') {
      set(b + 'attn.proj_l.weight', randT([h, h], r, 0.6));
      set(b + 'attn.proj_l.bias', randT([h], r, 0.1));
      set(b + 'attn.proj_w.weight', randT([h, h], r, 0.6));
      set(b + 'attn.proj_w.bias', randT([h], r, 0.1));
      set(b + 'gamma_1', randT([c], r, 0.3, 0.5));
      set(b + 'gamma_2', randT([c], r, 0.3, 0.5));
    }
    set(b + 'norm2.weight', randT([c], r, 0.2, 1));
    set(b + 'norm2.bias', randT([c], r, 0.1));
    set(b + 'mlp.fc1.weight', randT([4 * c, c], r, 0.3));
    set(b + 'mlp.fc1.bias', randT([4 * c], r, 0.1));
    set(b + 'mlp.fc2.weight', randT([c, 4 * c], r, 0.3));
    set(b + 'mlp.fc2.bias', randT([c], r, 0.1));
  }
  set('norm.weight', randT([c], r, 0.2, 1));
  set('norm.bias', randT([c], r, 0.1));
  return m;
}
