#!/usr/bin/env python3
"""PyTorch reference for bench/train-step.bench.ts: one U-Flow training step (forward + backward +
Adam) on cached features, the same graph as models/flows/uflow-graph.ts built in plain torch
(no FrEIA; the AllInOne block math of spec/uflow.md 4.2). Prints one JSON line."""
import argparse
import json
import math
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class AllInOne(nn.Module):
    def __init__(self, c, k, rng):
        super().__init__()
        self.c2 = c // 2
        self.c1 = c - self.c2
        self.subnet = nn.Sequential(
            nn.Conv2d(self.c1, self.c1, k, padding="same"), nn.ReLU(), nn.Conv2d(self.c1, 2 * self.c2, k, padding="same")
        )
        self.global_scale = nn.Parameter(torch.full((1, c, 1, 1), 2.0 * math.log(math.exp(5.0) - 1.0)))
        self.global_offset = nn.Parameter(torch.zeros(1, c, 1, 1))
        perm = rng.permutation(c)
        w = torch.zeros(c, c, 1, 1)
        w[torch.arange(c), torch.as_tensor(perm)] = 1.0
        self.w_perm = nn.Parameter(w, requires_grad=False)

    def forward(self, x):
        x1, x2 = torch.split(x, [self.c1, self.c2], dim=1)
        a = self.subnet(x1) * 0.1
        s = 2.0 * torch.tanh(a[:, : self.c2])
        y2 = x2 * torch.exp(s) + a[:, self.c2 :]
        jac = torch.sum(s, dim=(1, 2, 3))
        u = torch.cat((x1, y2), 1)
        g = 0.1 * F.softplus(self.global_scale, beta=0.5)
        out = F.conv2d(u * g + self.global_offset, self.w_perm)
        return out, jac + x.shape[2] * x.shape[3] * torch.sum(torch.log(g))


class UFlow(nn.Module):
    def __init__(self, channels, sizes, flow_steps, layer_norm, seed=0):
        super().__init__()
        rng = np.random.RandomState(seed)
        self.channels = channels
        self.norms = nn.ModuleList([nn.LayerNorm([c, s, s]) for c, s in zip(channels, sizes)]) if layer_norm else None
        self.stages = nn.ModuleList()
        self.splits = []
        v = channels[-1]
        for level in range(len(channels) - 1, -1, -1):
            self.stages.append(nn.ModuleList([AllInOne(v, 3 if k % 2 == 0 else 1, rng) for k in range(flow_steps)]))
            if level > 0:
                a = (v // 8) * 4
                self.splits.append(a)
                v = channels[level - 1] + a // 4

    def forward(self, feats):
        if self.norms is not None:
            feats = [n(f) for n, f in zip(self.norms, feats)]
        S = len(feats)
        x = feats[-1]
        logdet = torch.zeros(x.shape[0])
        zs = [None] * S
        for j, stage in enumerate(self.stages):
            for block in stage:
                x, ld = block(x)
                logdet = logdet + ld
            level = S - 1 - j
            if level > 0:
                a = self.splits[j]
                u, z = x[:, :a], x[:, a:]
                zs[level] = z
                x = torch.cat((feats[level - 1], F.pixel_shuffle(u, 2)), 1)  # channel-major = IRevNet order
            else:
                zs[0] = x
        return zs, logdet


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--channels", default="64,128,256")
    p.add_argument("--sizes", default="64,32,16")
    p.add_argument("--flow-steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--layer-norm", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    channels = [int(c) for c in args.channels.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    model = UFlow(channels, sizes, args.flow_steps, bool(args.layer_norm))
    feats = [torch.randn(args.batch, c, s, s) for c, s in zip(channels, sizes)]
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=1e-3, weight_decay=1e-5)

    def step():
        opt.zero_grad()
        zs, logdet = model(feats)
        lpz = sum(0.5 * torch.sum(z**2, dim=(1, 2, 3)) for z in zs)
        loss = torch.mean(lpz - logdet)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    times, losses = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"ms_per_step": statistics.median(times), "times_ms": times, "losses": losses, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
