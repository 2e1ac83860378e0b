#!/usr/bin/python3
"""Python reference for bench/nfa-metrics.bench.ts (written from spec/nfa.md and spec/metrics.md,
in the style of the official U-Flow code: skimage max_tree + networkx for the tree NFA, scipy
binom.logsf for the block NFA, the anomalib-2022 per-region loop for AUPRO). No torch: the PyTorch
pieces (reflect pad, bicubic/bilinear interpolation, torchmetrics ROC) are written in NumPy.

Usage: nfa_metrics.py <dir>   where <dir>/job.json describes raw little-endian inputs:
  {"tree":  {"file": "z.f32", "shape": [B, H, W, C], "repeats": 3},          # NHWC float32
   "block": {"file": "z.f32", "shape": [B, H, W, C], "repeats": 3, "win_size": 5, "p": 0.9, "target": 256},
   "aupro": {"maps": "maps.f32", "masks": "masks.u8", "shape": [N, H, W], "fpr_limit": 0.3}}
Any section may be absent. Prints one JSON object: timings (ms) and the values computed, so the
caller can compare them with its own.
"""
import itertools as it
import json
import os
import sys
import time

import networkx as nx
import numpy as np
import scipy.ndimage as ndi
import scipy.stats as st
from mpmath import mp
from skimage.morphology import max_tree

mp.dps = 15


# ----------------------------------------------------------------------------- tree NFA
class TreeNFA:
    """One image of one scale; z is [C, H, W] float32."""

    def __init__(self, z):
        self.C = z.shape[0]
        self.z2 = (z.reshape(self.C, -1) ** 2).astype(np.float32)
        self.shape = z.shape[1:]
        score = np.mean(z.astype(np.float32) ** 2, axis=0, dtype=np.float32)
        self.g = self._component_tree(score)

    def _component_tree(self, score):
        parents, order = max_tree(score, connectivity=1)
        par = parents.ravel()
        val = score.ravel()
        g = nx.DiGraph()
        g.add_nodes_from(order)
        for v in order:
            g.nodes[v]['v'] = val[v]
        # edges point child -> parent, as in the official code
        g.add_edges_from((int(v), int(par[v])) for v in order[1:])
        root = int(order[0])
        # flat zones: fold children of equal value into their parent (iteratively)
        stack = [root]
        while stack:
            n = stack.pop()
            zone = [n]
            for c in list(g.predecessors(n)):
                if g.nodes[c]['v'] == g.nodes[n]['v']:
                    zone.append(c)
                    g.remove_node(c)
                else:
                    stack.append(c)
            g.nodes[n]['px'] = zone
        # accumulate descendants' pixels (post-order)
        post = list(nx.dfs_postorder_nodes(g.reverse(copy=False), root))
        for n in post:
            for c in g.predecessors(n):
                g.nodes[n]['px'] = g.nodes[n]['px'] + g.nodes[c]['px']
        return g

    def _branch(self, leaf):
        out = [leaf]
        n = leaf
        while True:
            succ = list(self.g.successors(n))
            if not succ or len(list(self.g.predecessors(succ[0]))) != 1:
                return out
            n = succ[0]
            out.append(n)

    def _prune(self):
        for leaf in [n for n in self.g.pred if len(self.g.pred[n]) == 0]:
            br = self._branch(leaf)
            keep = int(np.argmin([self.g.nodes[b]['lp'] for b in br]))
            for i, b in enumerate(br):
                if i != keep:
                    self.g.add_edges_from(it.product(self.g.predecessors(b), self.g.successors(b)))
                    self.g.remove_node(b)

    def _merge(self):
        merged = False
        for b in [n for n in self.g.pred if len(self.g.pred[n]) > 1]:
            kids = list(self.g.predecessors(b))
            if any(len(self.g.pred[k]) > 0 for k in kids):
                continue
            if self.g.nodes[b]['lp'] <= np.min([self.g.nodes[k]['lp'] for k in kids]):
                merged = True
                for k in kids:
                    self.g.remove_node(k)
        return merged

    def log_prob_map(self):
        e = np.sum(self.z2, axis=0)
        for n in self.g.nodes:
            px = self.g.nodes[n]['px']
            m = e[px].min()
            u = m / self.C
            self.g.nodes[n]['lp'] = len(px) * (-(self.C / 2) * (u - 1 - np.log(u)) / np.log(10))
        self._prune()
        while self._merge():
            self._prune()
        self._prune()
        clusters = {}
        for leaf in [n for n in self.g.pred if len(self.g.pred[n]) == 0]:
            br = self._branch(leaf)
            best = br[int(np.argmin([self.g.nodes[b]['lp'] for b in br]))]
            clusters[self.g.nodes[best]['lp']] = self.g.nodes[best]['px']
        out = np.full(self.shape[0] * self.shape[1], np.nan, dtype=np.float32)
        for lp, px in clusters.items():
            out[px] = lp
        return out.reshape(self.shape)


def tree_log_nt(sizes):
    a, b = mp.mpf(0.316915), mp.mpf(4.062570)
    tot = mp.mpf(0)
    for n in sizes:
        tot += n * sum(a * b ** mp.mpf(r) / mp.mpf(r) for r in range(1, n + 1))
    return float(np.float32(mp.log10(tot)))


# ----------------------------------------------------------------------------- resampling (PyTorch semantics)
def _cubic_taps(n_in, n_out, A=-0.75):
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    real = scale * np.arange(n_out)
    i0 = np.floor(real).astype(np.int64)
    t = real - i0
    c1 = lambda x: ((A + 2) * x - (A + 3)) * x * x + 1
    c2 = lambda x: ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    w = np.stack([c2(t + 1), c1(t), c1(1 - t), c2(2 - t)], axis=1)
    idx = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    return idx, w


def bicubic_align_corners(x, out):
    """x [..., h, w] float64 -> [..., out, out]."""
    iy, wy = _cubic_taps(x.shape[-2], out)
    ix, wx = _cubic_taps(x.shape[-1], out)
    rows = np.einsum('...hok,ok->...ho', x[..., :, ix], wx)
    return np.einsum('...okw,ok->...ow', rows[..., iy, :], wy)


def _linear_taps(n_in, n_out):
    real = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0)
    i0 = np.floor(real).astype(np.int64)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    l1 = real - i0
    return i0, i1, 1 - l1, l1


def bilinear(x, out):
    y0, y1, a0, a1 = _linear_taps(x.shape[-2], out)
    x0, x1, b0, b1 = _linear_taps(x.shape[-1], out)
    rows = x[..., :, x0] * b0 + x[..., :, x1] * b1
    return rows[..., y0, :] * a0[:, None] + rows[..., y1, :] * a1[:, None]


def neg_log_nfa_tree(zs, target):
    """zs: list of [B, C, H, W] float32."""
    B = zs[0].shape[0]
    lognt = tree_log_nt([z.shape[2] * z.shape[3] for z in zs])
    out = []
    for b in range(B):
        ups = [bilinear(np.nan_to_num(TreeNFA(z[b]).log_prob_map(), nan=0.0).astype(np.float64), target).astype(np.float32) for z in zs]
        out.append(-(np.float32(lognt) + np.min(np.stack(ups), axis=0)))
    return np.stack(out)


# ----------------------------------------------------------------------------- block NFA
def block_log_prob(z, win, p):
    """z: [B, C, H, W] float32 -> [B, H, W] float64 (scipy logsf / ln 10)."""
    tau = st.chi2.ppf(p, 1)
    r = max(int(win // 2), 1)
    z2 = np.pad(z ** 2, ((0, 0), (0, 0), (r, r), (r, r)), mode='reflect')
    hit = (z2 >= tau).astype(np.int64)
    k = 2 * r + 1
    win_sum = np.lib.stride_tricks.sliding_window_view(hit, (k, k), axis=(-2, -1)).sum(axis=(-2, -1))
    x = win_sum.sum(axis=1) / z.shape[1]
    return st.binom.logsf(x, k * k, 1 - p) / np.log(10)


def neg_log_nfa_block(zs, win, p, target):
    acc = 0
    for s, z in enumerate(zs):
        acc = acc + bicubic_align_corners(block_log_prob(z, win / 2 ** s, p), target)
    lognt = np.float32(np.log10(sum(z.shape[2] * z.shape[3] for z in zs)))
    return -(np.float64(lognt) + acc)


# ----------------------------------------------------------------------------- AUPRO (anomalib-2022 loop)
def roc_binary(preds, target):
    """torchmetrics binary ROC (every distinct score a threshold, leading (0,0)); float32 fpr/tpr."""
    order = np.argsort(-preds, kind='mergesort')
    p = preds[order]
    t = target[order].astype(np.float64)
    distinct = np.where(np.diff(p))[0]
    idx = np.r_[distinct, t.size - 1]
    tps = np.cumsum(t)[idx]
    fps = 1 + idx - tps
    tps = np.r_[0, tps].astype(np.float32)
    fps = np.r_[0, fps].astype(np.float32)
    return fps / fps[-1], tps / tps[-1]


def interp1d(x, y, xn):
    eps = np.finfo(np.float32).eps
    slope = (y[1:] - y[:-1]) / (np.float32(eps) + (x[1:] - x[:-1]))
    idx = np.clip(np.searchsorted(x, xn) - 1, 0, x.size - 2)
    return y[idx] + slope[idx] * (xn - x[idx])


def aupro(maps, masks, fpr_limit=0.3, max_regions=None):
    """The official AUPRO. max_regions (timing only, evaluate_official.py): run the per-region loop
    on that many regions, evenly spaced, instead of all; the value is then not the AUPRO, and the
    caller scales the loop's time by regions / regions run (returned as the 5th and 6th items:
    regions run, loop seconds)."""
    lim = np.float32(fpr_limit)
    cca = np.zeros(masks.shape, dtype=np.int64)
    nxt = 1
    for i in range(masks.shape[0]):
        lab, n = ndi.label(masks[i] > 0, structure=np.ones((3, 3)))
        cca[i][lab > 0] = lab[lab > 0] + nxt - 1
        nxt += n
    preds = maps.ravel()
    cca = cca.ravel()
    target = (masks.ravel() > 0)
    fpr_all = roc_binary(preds, target)[0]
    K = int(np.sum(fpr_all <= lim))
    tpr = np.zeros(K, dtype=np.float32)
    fpr = np.zeros(K, dtype=np.float32)
    new_idx = np.arange(K, dtype=np.float32)
    labels = np.unique(cca)[1:]
    background = cca == 0
    run = labels
    if max_regions is not None and 0 < max_regions < labels.size:
        run = labels[np.linspace(0, labels.size - 1, max_regions).round().astype(np.int64)]
    t_loop = time.perf_counter()
    for label in run:
        interp = False
        new_idx[-1] = K - 1
        mask = cca == label
        sel = background | mask
        f, t = roc_binary(preds[sel], mask[sel])
        if f[f <= lim].max() == 0:
            flim = f[f > lim].min()
        else:
            flim = lim
        fidx = np.where(f <= flim)[0]
        if not np.allclose(f[fidx].max(), lim):
            j = np.searchsorted(f, lim)
            fidx = np.r_[fidx, j]
            slope = np.float32(1) - ((f[j] - lim) / (f[j] - f[j - 1]))
            interp = True
        f = f[fidx]
        t = t[fidx]
        x = fidx.astype(np.float32)
        x /= x.max()
        x *= new_idx.max()
        if interp:
            new_idx[-1] = x[-2] + (x[-1] - x[-2]) * slope
        tpr += interp1d(x, t, new_idx)
        fpr += interp1d(x, f, new_idx)
    t_loop = time.perf_counter() - t_loop
    tpr /= np.float32(labels.size)
    fpr /= np.float32(labels.size)
    area = np.float32(np.trapz(tpr.astype(np.float64), fpr.astype(np.float64)))
    return float(area / fpr[-1]), fpr, tpr, int(labels.size), int(run.size), t_loop


# ----------------------------------------------------------------------------- driver
def _timed(fn, repeats):
    times = []
    res = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), res


def main(d):
    job = json.load(open(os.path.join(d, 'job.json')))
    out = {'python': sys.version.split()[0], 'numpy': np.__version__}
    if 'tree' in job:
        j = job['tree']
        B, H, W, C = j['shape']
        z = np.fromfile(os.path.join(d, j['file']), dtype='<f4').reshape(B, H, W, C).transpose(0, 3, 1, 2).copy()
        ms, m = _timed(lambda: TreeNFA(z[0]).log_prob_map(), j.get('repeats', 3))
        out['tree_ms_per_image'] = ms
        out['tree_map'] = [None if np.isnan(v) else float(v) for v in m.ravel()]
    if 'block' in job:
        j = job['block']
        B, H, W, C = j['shape']
        z = np.fromfile(os.path.join(d, j['file']), dtype='<f4').reshape(B, H, W, C).transpose(0, 3, 1, 2).copy()
        ms, m = _timed(lambda: neg_log_nfa_block([z[:1]], j.get('win_size', 5), j.get('p', 0.9), j.get('target', 256)), j.get('repeats', 3))
        out['block_ms_per_image'] = ms
        out['block_map_sample'] = [float(v) for v in m.ravel()[:: max(1, m.size // 4096)]]
        out['block_map_stride'] = max(1, m.size // 4096)
    if 'aupro' in job:
        j = job['aupro']
        N, H, W = j['shape']
        maps = np.fromfile(os.path.join(d, j['maps']), dtype='<f4').reshape(N, H, W)
        masks = np.fromfile(os.path.join(d, j['masks']), dtype=np.uint8).reshape(N, H, W)
        ms, r = _timed(lambda: aupro(maps, masks, j.get('fpr_limit', 0.3)), 1)
        out['aupro_ms'] = ms
        out['aupro'] = r[0]
        out['aupro_points'] = int(r[1].size)
        out['aupro_regions'] = r[3]
        step = max(1, r[1].size // 512)
        out['pro_curve_stride'] = step
        out['pro_curve_fpr'] = [float(v) for v in r[1][::step]]
        out['pro_curve_pro'] = [float(v) for v in r[2][::step]]
    json.dump(out, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main(sys.argv[1])
