/**
 * Tree (upper-level-set) a-contrario NFA: official `src/nfa_tree.py`
 * (`compute_nfa_anomaly_score_tree`), spec/nfa.md §2. Pure TypeScript on NHWC typed arrays.
 *
 * Per image b and scale s (z = z_s[b], C channels, h×w):
 *  1. E = Σ_c z² per pixel (float32, summed channel by channel as NumPy's axis-0 sum does);
 *     score = mean_c z² = E / C (float32).
 *  2. Max-tree of `score`, 4-connectivity (Berger et al. union-find on pixels sorted ascending,
 *     ties by pixel index, then canonicalisation), turned into the tree of flat zones: one node per
 *     connected component of an upper level set; node ids follow the sorted order of their
 *     canonical pixel, so a parent always has a smaller id than its children.
 *  3. ℓ(R) = |R| · (−(C/2) · (u − 1 − ln u) / ln 10), u = m / C, m = min_R E. u, u − 1, ln u and
 *     their difference are float32 (NumPy scalar rules for a float32 m); the rest float64.
 *  4. prune (keep the first minimum of every leaf branch), `while merge(): prune`, prune; merge
 *     deletes the all-leaf children of a node whose ℓ ≤ min ℓ(children).
 *  5. Final clusters: per leaf (in node order) its branch's first-minimum node; clusters are keyed
 *     by ℓ, so a later leaf with an equal ℓ replaces an earlier one (reproduced). Uncovered pixels
 *     are NaN; the map is float32.
 *  6. NaN → 0, bilinear (align_corners=False) to T×T, min over scales, score = −(logNT + min),
 *     logNT = log10 Σ_s N_s Σ_{r=1}^{N_s} α β^r / r (α = 0.316915, β = 4.062570) computed in log
 *     space in float64 and rounded to float32 as the reference does.
 *
 * The tree operations run on flat typed arrays (parent, alive, child counts) with no per-node
 * allocation; a `TreeNfaWorkspace` can be reused across images of the same or smaller size.
 */
import { bilinearHalfPixel } from './resize64.js';
import { latentDims, type Latent } from './latent.js';
import { toHW, type SizeInput } from '../size.js';

export type { Latent } from './latent.js';

const LN10 = Math.LN10;

/** Scratch buffers for one h×w map, reused across calls (grown on demand). */
export class TreeNfaWorkspace {
  cap = 0;
  E = new Float32Array(0);
  score = new Float32Array(0);
  sorted = new Int32Array(0);
  tmp = new Int32Array(0);
  parent = new Int32Array(0);
  zpar = new Int32Array(0);
  nodeOf = new Int32Array(0);
  // per node
  origParent = new Int32Array(0);
  par = new Int32Array(0);
  area = new Int32Array(0);
  minE = new Float32Array(0);
  logProb = new Float64Array(0);
  alive = new Uint8Array(0);
  childCount = new Int32Array(0);
  hasInner = new Uint8Array(0);
  minChild = new Float64Array(0);
  flag = new Int32Array(0);
  order = new Int32Array(0);
  branch = new Int32Array(0);
  label = new Int32Array(0);
  keys = new Uint32Array(0);
  count = new Int32Array(2048);

  ensure(n: number): void {
    if (n <= this.cap) return;
    this.cap = n;
    this.E = new Float32Array(n);
    this.score = new Float32Array(n);
    this.sorted = new Int32Array(n);
    this.tmp = new Int32Array(n);
    this.parent = new Int32Array(n);
    this.zpar = new Int32Array(n);
    this.nodeOf = new Int32Array(n);
    this.origParent = new Int32Array(n);
    this.par = new Int32Array(n);
    this.area = new Int32Array(n);
    this.minE = new Float32Array(n);
    this.logProb = new Float64Array(n);
    this.alive = new Uint8Array(n);
    this.childCount = new Int32Array(n);
    this.hasInner = new Uint8Array(n);
    this.minChild = new Float64Array(n);
    this.flag = new Int32Array(n);
    this.order = new Int32Array(n);
    this.branch = new Int32Array(n);
    this.label = new Int32Array(n);
    this.keys = new Uint32Array(n);
  }
}

/** Statistics of one map computation (for tests and diagnostics). */
export interface TreeNfaStats {
  /** Nodes of the flat-zone component tree. */
  nodes: number;
  /** merge passes that merged something. */
  merges: number;
  /** Clusters painted (after the equal-ℓ overwrite). */
  clusters: number;
}

/**
 * ℓ for a region of `area` pixels whose minimum Σ_c z² is m (float32), C channels. With `guard`,
 * ℓ = 0 where u ≤ 1: there the Chernoff bound is not valid (spec/nfa.md §2.3) and a region of low
 * energy is no evidence of an anomaly; the paper's computation (no guard) counts it as evidence.
 */
export function chernoffLog10Prob(area: number, m: number, C: number, guard = false): number {
  const u = Math.fround(m / C);
  if (guard && !(u > 1)) return 0;
  const t = Math.fround(Math.fround(u - 1) - Math.fround(Math.log(u)));
  return area * ((-(C / 2) * t) / LN10);
}

/** a "<" b with NumPy argmin/min semantics (NaN is the minimum). */
function lessNan(a: number, b: number): boolean {
  return a < b || (a !== a && b === b);
}

/**
 * Sorts pixel indices by float32 score ascending, ties by index (stable LSD radix on the IEEE
 * bits; scores are ≥ 0, so the bit patterns order like the values).
 */
function sortByScore(ws: TreeNfaWorkspace, N: number): void {
  const bits = new Uint32Array(ws.score.buffer, ws.score.byteOffset, N);
  let src = ws.sorted;
  let dst = ws.tmp;
  for (let i = 0; i < N; i++) src[i] = i;
  const count = ws.count;
  for (let shift = 0; shift < 32; shift += 11) {
    count.fill(0);
    for (let i = 0; i < N; i++) count[(bits[src[i]!]! >>> shift) & 2047]!++;
    let sum = 0;
    for (let k = 0; k < 2048; k++) {
      const c = count[k]!;
      count[k] = sum;
      sum += c;
    }
    for (let i = 0; i < N; i++) {
      const p = src[i]!;
      dst[count[(bits[p]! >>> shift) & 2047]!++] = p;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  // three passes: the result is in `src` (= ws.tmp); move it to ws.sorted
  if (src !== ws.sorted) ws.sorted.set(src.subarray(0, N));
}

function findRoot(zpar: Int32Array, x: number): number {
  let r = x;
  while (zpar[r] !== r) r = zpar[r]!;
  while (zpar[x] !== r) {
    const n = zpar[x]!;
    zpar[x] = r;
    x = n;
  }
  return r;
}

/**
 * The ℓ map (log10 probability per pixel, NaN where no cluster) of image `b` of one latent:
 * [h·w] float32, row-major. This is the reference's `NFATree(z[b]).compute_log_prob_map()`.
 */
export function treeLog10ProbMap(z: Latent, b: number, ws = new TreeNfaWorkspace(), stats?: TreeNfaStats, guard = false): Float32Array {
  const [B, h, w, C] = latentDims(z);
  if (!(b >= 0 && b < B)) throw new RangeError(`tree NFA: image ${b} out of range 0..${B - 1}`);
  const N = h * w;
  ws.ensure(N);
  const { E, score } = ws;
  const data = z.data;
  // Sequential float32 sums per pixel; four pixels at a time so the four dependency chains overlap.
  const base = b * N * C;
  let i = 0;
  for (; i + 4 <= N; i += 4) {
    const o0 = base + i * C;
    const o1 = o0 + C;
    const o2 = o1 + C;
    const o3 = o2 + C;
    let e0 = 0;
    let e1 = 0;
    let e2 = 0;
    let e3 = 0;
    for (let c = 0; c < C; c++) {
      const v0 = data[o0 + c]!;
      const v1 = data[o1 + c]!;
      const v2 = data[o2 + c]!;
      const v3 = data[o3 + c]!;
      e0 = Math.fround(e0 + Math.fround(v0 * v0));
      e1 = Math.fround(e1 + Math.fround(v1 * v1));
      e2 = Math.fround(e2 + Math.fround(v2 * v2));
      e3 = Math.fround(e3 + Math.fround(v3 * v3));
    }
    E[i] = e0;
    E[i + 1] = e1;
    E[i + 2] = e2;
    E[i + 3] = e3;
  }
  for (; i < N; i++) {
    const o = base + i * C;
    let e = 0;
    for (let c = 0; c < C; c++) {
      const v = data[o + c]!;
      e = Math.fround(e + Math.fround(v * v));
    }
    E[i] = e;
  }
  for (let p = 0; p < N; p++) score[p] = Math.fround(E[p]! / C);
  sortByScore(ws, N);
  const { sorted, parent, zpar, nodeOf } = ws;

  // Max-tree by union-find, pixels processed from the highest value down.
  zpar.fill(-1, 0, N);
  for (let k = N - 1; k >= 0; k--) {
    const p = sorted[k]!;
    parent[p] = p;
    zpar[p] = p;
    const y = (p / w) | 0;
    const x = p - y * w;
    if (y > 0) union(p, p - w);
    if (x > 0) union(p, p - 1);
    if (x < w - 1) union(p, p + 1);
    if (y < h - 1) union(p, p + w);
  }
  function union(p: number, n: number): void {
    if (zpar[n] === -1) return;
    const r = findRoot(zpar, n);
    if (r !== p) {
      parent[r] = p;
      zpar[r] = p;
    }
  }
  // Canonicalisation: every pixel points to the canonical pixel of its parent's flat zone.
  const root = sorted[0]!;
  for (let k = 0; k < N; k++) {
    const p = sorted[k]!;
    const q = parent[p]!;
    if (score[parent[q]!] === score[q]) parent[p] = parent[q]!;
  }

  // Nodes of the flat-zone tree, in sorted order of their canonical pixel.
  const { origParent, par, area, minE, logProb, alive } = ws;
  let nNodes = 0;
  for (let k = 0; k < N; k++) {
    const p = sorted[k]!;
    if (p === root || score[parent[p]!] !== score[p]) {
      const id = nNodes++;
      nodeOf[p] = id;
      origParent[id] = p === root ? -1 : nodeOf[parent[p]!]!;
      area[id] = 1;
      minE[id] = E[p]!;
    } else {
      const id = nodeOf[parent[p]!]!;
      nodeOf[p] = id;
      area[id]!++;
      if (E[p]! < minE[id]!) minE[id] = E[p]!;
    }
  }
  for (let id = nNodes - 1; id > 0; id--) {
    const q = origParent[id]!;
    area[q]! += area[id]!;
    if (minE[id]! < minE[q]!) minE[q] = minE[id]!;
  }
  const { order } = ws;
  for (let id = 0; id < nNodes; id++) {
    logProb[id] = chernoffLog10Prob(area[id]!, minE[id]!, C, guard);
    par[id] = origParent[id]!;
    alive[id] = 1;
    order[id] = id;
  }

  const tree = new DynTree(ws, nNodes);
  tree.prune();
  let merges = 0;
  while (tree.merge()) {
    merges++;
    tree.prune();
  }
  tree.prune();
  const clusters = tree.finalClusters();

  // Paint: label[id] = the chosen node whose region holds node id (chosen regions are disjoint).
  const { label, flag } = ws;
  for (let id = 0; id < nNodes; id++) {
    if (flag[id] === 1) label[id] = id;
    else label[id] = origParent[id]! >= 0 ? label[origParent[id]!]! : -1;
  }
  const out = new Float32Array(N);
  for (let p = 0; p < N; p++) {
    const l = label[nodeOf[p]!]!;
    out[p] = l >= 0 ? logProb[l]! : NaN;
  }
  if (stats) {
    stats.nodes = nNodes;
    stats.merges = merges;
    stats.clusters = clusters;
  }
  return out;
}

/**
 * The dynamic tree of prune/merge: parent pointers, alive flags and child counts over the node
 * arrays. Child counts are maintained, not recounted: prune never changes the number of children of
 * a surviving node (a collapsed branch keeps one node under the same parent), and merge only empties
 * the merging nodes. For the same reason, after the first prune every leaf's branch is the leaf
 * alone, so later prunes only need the branches of the nodes the last merge turned into leaves.
 */
class DynTree {
  private n: number; // alive nodes listed in ws.order[0..n)
  private fresh = new Int32Array(0); // leaves created by the last merge
  private nFresh = -1; // −1: prune every leaf
  constructor(
    private ws: TreeNfaWorkspace,
    n: number,
  ) {
    this.n = n;
    const { order, childCount, par } = ws;
    for (let k = 0; k < n; k++) childCount[order[k]!] = 0;
    for (let k = 0; k < n; k++) {
      const p = par[order[k]!]!;
      if (p >= 0) childCount[p]!++;
    }
  }

  private compact(): void {
    const { order, alive } = this.ws;
    let m = 0;
    for (let k = 0; k < this.n; k++) {
      const v = order[k]!;
      if (alive[v]) order[m++] = v;
    }
    this.n = m;
  }

  /** Branch of leaf l into ws.branch; returns its length. */
  private branchOf(l: number): number {
    const { branch, par, childCount } = this.ws;
    let len = 0;
    branch[len++] = l;
    let v = l;
    for (;;) {
      const p = par[v]!;
      if (p < 0 || childCount[p] !== 1) break;
      branch[len++] = p;
      v = p;
    }
    return len;
  }

  private branchArgmin(len: number): number {
    const { branch, logProb } = this.ws;
    let best = 0;
    for (let i = 1; i < len; i++) if (lessNan(logProb[branch[i]!]!, logProb[branch[best]!]!)) best = i;
    return best;
  }

  /** Collapses the branch of leaf l to its (first) minimum-ℓ node. */
  private pruneLeaf(l: number): void {
    const len = this.branchOf(l);
    if (len === 1) return;
    const { branch, alive, par, childCount } = this.ws;
    const c = this.branchArgmin(len);
    const chosen = branch[c]!;
    const newParent = par[branch[len - 1]!]!;
    for (let i = 0; i < len; i++) if (i !== c) alive[branch[i]!] = 0;
    par[chosen] = newParent;
    childCount[chosen] = 0;
  }

  /** Procedure 1: every leaf branch collapses to its (first) minimum-ℓ node. */
  prune(): void {
    const { order, childCount, alive } = this.ws;
    if (this.nFresh < 0) {
      const n = this.n;
      for (let k = 0; k < n; k++) {
        const l = order[k]!;
        if (alive[l] && childCount[l] === 0) this.pruneLeaf(l);
      }
    } else {
      for (let i = 0; i < this.nFresh; i++) {
        const l = this.fresh[i]!;
        if (alive[l] && childCount[l] === 0) this.pruneLeaf(l);
      }
    }
    this.nFresh = 0;
    this.compact();
  }

  /** Procedure 2: nodes whose children are all leaves absorb them when ℓ(node) ≤ min ℓ(children). */
  merge(): boolean {
    const { order, childCount, alive, par, logProb, hasInner, minChild, flag } = this.ws;
    const n = this.n;
    for (let k = 0; k < n; k++) {
      const v = order[k]!;
      hasInner[v] = 0;
      minChild[v] = Infinity;
    }
    for (let k = 0; k < n; k++) {
      const v = order[k]!;
      const p = par[v]!;
      if (p < 0) continue;
      if (childCount[v]! > 0) hasInner[p] = 1;
      else if (lessNan(logProb[v]!, minChild[p]!)) minChild[p] = logProb[v]!;
    }
    let merged = 0;
    if (this.fresh.length < n) this.fresh = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const v = order[k]!;
      const ok = childCount[v]! > 1 && !hasInner[v] && logProb[v]! <= minChild[v]!;
      flag[v] = ok ? 1 : 0;
      if (ok) this.fresh[merged++] = v;
    }
    if (merged === 0) return false;
    for (let k = 0; k < n; k++) {
      const v = order[k]!;
      const p = par[v]!;
      if (p >= 0 && flag[p] === 1) alive[v] = 0;
    }
    for (let i = 0; i < merged; i++) childCount[this.fresh[i]!] = 0;
    this.nFresh = merged;
    this.compact();
    return true;
  }

  /**
   * Marks in ws.flag (= 1) the nodes painted in the final map: per leaf, the first minimum of its
   * branch; clusters keyed by ℓ, a later leaf with the same ℓ replacing an earlier one.
   */
  finalClusters(): number {
    const { order, childCount, branch, logProb, flag } = this.ws;
    const n = this.n;
    flag.fill(0);
    const byValue = new Map<number, number>();
    let nanCount = 0;
    for (let k = 0; k < n; k++) {
      const l = order[k]!;
      if (childCount[l] !== 0) continue;
      const len = this.branchOf(l);
      const chosen = branch[this.branchArgmin(len)]!;
      const key = logProb[chosen]!;
      if (key !== key) {
        nanCount++; // NaN keys never collide in a Python dict; they paint NaN anyway.
        continue;
      }
      const prev = byValue.get(key);
      if (prev !== undefined) flag[prev] = 0;
      byValue.set(key, chosen);
      flag[chosen] = 1;
    }
    return byValue.size + nanCount;
  }
}

/**
 * logNT of the tree variant: log10 Σ_s N_s Σ_{r=1}^{N_s} α β^r / r, rounded to float32.
 * `sizes` are the N_s = h_s·w_s.
 */
export function treeLogNT(sizes: readonly number[]): number {
  const lnA = Math.log(0.316915);
  const lnB = Math.log(4.06257);
  const perScale: number[] = [];
  for (const N of sizes) {
    if (!(Number.isInteger(N) && N > 0)) throw new RangeError(`tree logNT: region size ${N}`);
    // ln Σ_{r=1}^{N} α β^r / r: the terms grow with r; factor out the last one.
    const top = lnA + N * lnB - Math.log(N);
    let s = 0;
    for (let r = N; r >= 1; r--) {
      const t = Math.exp(lnA + r * lnB - Math.log(r) - top);
      s += t;
      if (t < 1e-18 * s) break;
    }
    perScale.push(Math.log(N) + top + Math.log(s));
  }
  const mx = Math.max(...perScale);
  let s = 0;
  for (const v of perScale) s += Math.exp(v - mx);
  return Math.fround((mx + Math.log(s)) / LN10);
}

/**
 * −log10 NFA of the tree variant: [B·Th·Tw] float32 (row-major per image) at the target size
 * (one integer: square, or [Th, Tw]). Detection: > 0.
 * Also returns nothing else; use `treeLog10ProbMap` for the per-scale maps.
 */
export function negLogNfaTree(z: Latent[], targetSize: SizeInput = 256, ws = new TreeNfaWorkspace(), guard = false): Float32Array {
  if (z.length === 0) throw new RangeError('tree NFA: no latents');
  const B = latentDims(z[0]!, 'z[0]')[0];
  const [Th, Tw] = toHW(targetSize, 'tree NFA target size');
  const TT = Th * Tw;
  const out = new Float32Array(B * TT).fill(Infinity);
  const sizes: number[] = [];
  z.forEach((zi, s) => {
    const [b2, h, w] = latentDims(zi, `z[${s}]`);
    if (b2 !== B) throw new RangeError(`tree NFA: z[${s}] has batch ${b2}, z[0] has ${B}`);
    sizes.push(h * w);
  });
  const logNT = treeLogNT(sizes);
  for (let b = 0; b < B; b++) {
    const o = b * TT;
    z.forEach((zi) => {
      const [, h, w] = zi.shape;
      const map = treeLog10ProbMap(zi, b, ws, undefined, guard);
      for (let i = 0; i < map.length; i++) if (map[i] !== map[i]) map[i] = 0;
      const up = bilinearHalfPixel(map, 1, h, w, Th, Tw);
      for (let i = 0; i < TT; i++) {
        const v = Math.fround(up[i]!);
        if (v < out[o + i]! || v !== v) out[o + i] = v;
      }
    });
    for (let i = 0; i < TT; i++) out[o + i] = -Math.fround(logNT + out[o + i]!);
  }
  return out;
}
