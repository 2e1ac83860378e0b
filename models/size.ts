/**
 * Image and feature-map sizes as [height, width] pairs.
 *
 * Configs and old run files may hold one integer (square); everything inside works on [h, w].
 * Feature-level sizes follow PyTorch's output-size rule for each backbone's layers,
 * floor((H + 2p − k)/s) + 1, never ⌊H/stride⌋ taken on faith:
 *  - ResNet (conv 7×7/2 p3, max-pool 3×3/2 p1, 3×3/2 p1 and 1×1/2 p0 downsampling): every
 *    stride-2 step maps H to ⌊(H − 1)/2⌋ + 1 = ⌈H/2⌉, so the level of stride s is ⌈H/s⌉;
 *  - `builtin:filters` (valid average pooling): ⌊H/s⌋;
 *  - CaiT / DeiT patch embedding (conv k = s = patch, p0): ⌊H/patch⌋;
 *  - a TensorFlow.js model: whatever its layers give (probed once at load).
 */

/** [height, width]. */
export type HW = [number, number];
/** A size as configs hold it: one integer (square) or [height, width]. */
export type SizeInput = number | readonly [number, number];

function isPosInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n > 0;
}

/** [h, w] of a size given as one integer (square) or a pair; throws on anything else. */
export function toHW(size: SizeInput | unknown, what = 'input size'): HW {
  if (isPosInt(size)) return [size, size];
  if (Array.isArray(size) && size.length === 2 && isPosInt(size[0]) && isPosInt(size[1])) return [size[0], size[1]];
  throw new Error(`${what} must be a positive integer or [height, width] of positive integers, got ${JSON.stringify(size)}`);
}

/** Whether a value is a valid size (integer or [h, w]). */
export function isSizeInput(size: unknown): size is SizeInput {
  try {
    toHW(size);
    return true;
  } catch {
    return false;
  }
}

export function isSquare(size: SizeInput): boolean {
  const [h, w] = toHW(size);
  return h === w;
}

/** How configs write a size: one integer when square (as before), else [h, w]. */
export function sizeForConfig(size: SizeInput): number | [number, number] {
  const [h, w] = toHW(size);
  return h === w ? h : [h, w];
}

/** "128" when square, else "96×128" (height × width). */
export function formatSize(size: SizeInput): string {
  const [h, w] = toHW(size);
  return h === w ? `${h}` : `${h}×${w}`;
}

/** "128×128" or "96×128" (height × width), always both. */
export function formatHW(size: SizeInput): string {
  const [h, w] = toHW(size);
  return `${h}×${w}`;
}

export function sameSize(a: SizeInput, b: SizeInput): boolean {
  const [ah, aw] = toHW(a);
  const [bh, bw] = toHW(b);
  return ah === bh && aw === bw;
}

/**
 * A CLI / settings string: `128` (square), `96x128`, `96×128`, `96,128` or `[96, 128]`
 * (height first). Throws a sentence on anything else.
 */
export function parseSize(text: string | number, what = '--input-size'): HW {
  if (typeof text === 'number') return toHW(text, what);
  const s = text.trim().replace(/^\[(.*)\]$/, '$1');
  const m = /^(\d+)\s*(?:[x×X,]\s*(\d+))?$/.exec(s);
  if (!m) throw new Error(`${what} takes one integer (square) or height×width, e.g. 256, 96x128 or 96,128; got '${text}'`);
  const h = Number(m[1]);
  const w = m[2] === undefined ? h : Number(m[2]);
  if (!(h > 0 && w > 0)) throw new Error(`${what}: sizes must be positive, got '${text}'`);
  return [h, w];
}

/** PyTorch's conv / pool output size (floor mode, dilation 1): ⌊(n + 2p − k)/s⌋ + 1. */
export function convOut(n: number, k: number, s: number, p: number): number {
  return Math.floor((n + 2 * p - k) / s) + 1;
}

/** How a backbone's levels shrink: 'ceil' ⌈H/s⌉ (ResNet, 'same'-padded stride-2 layers), 'floor' ⌊H/s⌋. */
export type LevelRule = 'ceil' | 'floor';

/** [h, w] of each level under a rule (stride s a power of two for 'ceil': each step is ⌊(H−1)/2⌋+1). */
export function ruleLevelSizes(rule: LevelRule, input: SizeInput, strides: readonly number[]): HW[] {
  const [h, w] = toHW(input);
  const f = rule === 'ceil' ? (n: number, s: number) => Math.ceil(n / s) : (n: number, s: number) => Math.floor(n / s);
  return strides.map((s) => [f(h, s), f(w, s)]);
}

/**
 * Where U-Flow's levels do not nest (a coarser level upsampled ×2 must be exactly the next finer
 * one, as FrEIA's concatenation requires), a sentence saying which; undefined when they nest.
 */
export function uflowNestingProblem(sizes: readonly (readonly [number, number])[]): string | undefined {
  // Coarsest first, the order in which the flow merges them.
  for (let s = sizes.length - 1; s >= 1; s--) {
    const [h, w] = sizes[s]!;
    const [hf, wf] = sizes[s - 1]!;
    if (hf !== 2 * h || wf !== 2 * w) {
      return `level ${s} is ${h}×${w}, upsampled ×2 it is ${2 * h}×${2 * w}, but level ${s - 1} is ${hf}×${wf}`;
    }
  }
  return undefined;
}

/** The nearest side lengths (one below or equal, one above) whose levels nest under `rule`. */
function nestingSides(rule: LevelRule, n: number, strides: readonly number[]): number[] {
  const ok = (m: number) => m >= 1 && uflowNestingProblem(ruleLevelSizes(rule, [m, m], strides)) === undefined && ruleLevelSizes(rule, [m, m], strides).every(([a]) => a >= 1);
  const out: number[] = [];
  for (let m = n; m >= 1; m--) if (ok(m)) { out.push(m); break; }
  for (let m = n + 1; m <= n + 4 * Math.max(...strides); m++) if (ok(m)) { out.push(m); break; }
  return out;
}

/** Sizes near `input` whose levels nest under `rule`, e.g. "96×64 or 112×80". */
export function nestingSuggestion(rule: LevelRule, input: SizeInput, strides: readonly number[]): string {
  const [h, w] = toHW(input);
  const hs = nestingSides(rule, h, strides);
  const ws = nestingSides(rule, w, strides);
  const pairs: string[] = [];
  for (let i = 0; i < Math.max(hs.length, ws.length); i++) {
    const a = hs[Math.min(i, hs.length - 1)];
    const b = ws[Math.min(i, ws.length - 1)];
    if (a !== undefined && b !== undefined) pairs.push(formatSize([a, b]));
  }
  return [...new Set(pairs)].join(' or ');
}

/** The level-size rule of a backbone by name: ⌊H/s⌋ for builtin:filters and the ViTs' patch embedding, else ⌈H/s⌉ (ResNet, 'same'-padded CNNs). */
export function levelRuleOf(backbone: string): LevelRule {
  return backbone === 'builtin:filters' || backbone === 'mcait' || backbone === 'cait' || backbone === 'deit' ? 'floor' : 'ceil';
}

/**
 * The sentence U-Flow refuses a size with when its levels do not nest (undefined when they do):
 * the reference builds the same graph with FrEIA, whose concatenation of a level with the
 * upsampled coarser one needs equal sizes, so it cannot run these sizes either.
 */
export function uflowSizeError(backbone: string, input: SizeInput, strides: readonly number[], sizes: readonly (readonly [number, number])[]): string | undefined {
  const problem = uflowNestingProblem(sizes);
  if (!problem) return undefined;
  const near = nestingSuggestion(levelRuleOf(backbone), input, strides);
  return (
    `U-Flow cannot use input size ${formatSize(input)} with backbone ${backbone}: its feature levels are ${sizes.map((s) => formatHW(s)).join(', ')}; ${problem}, ` +
    `and the flow joins each level with the coarser one upsampled ×2 (the reference's FrEIA graph refuses these sizes too)` +
    (near ? `. Sizes that work near it: ${near}` : '') +
    ' (FastFlow takes any size)'
  );
}

/** The official evaluation's map side (evaluate.py: 256×256 for a 448 input). */
export const EVALUATION_SIDE = 256;

/**
 * The size maps are evaluated at: 256×256 for a square input (evaluate.py), else the input's
 * aspect ratio with its longer side 256 (e.g. 96×128 → 192×256), so that maps, masks and the
 * metrics keep the image's shape.
 */
export function evaluationSize(input: SizeInput, side = EVALUATION_SIDE): HW {
  const [h, w] = toHW(input);
  if (h === w) return [side, side];
  return h > w ? [side, Math.max(1, Math.round((side * w) / h))] : [Math.max(1, Math.round((side * h) / w)), side];
}
