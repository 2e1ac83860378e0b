#!/usr/bin/env python3
"""PyTorch reference for bench/epoch.bench.ts: full U-Flow training epochs on cached features
(shuffled batches, the last partial batch kept, official loss, Adam with weight decay), the same
graph as models/flows/uflow-graph.ts (the plain-torch U-Flow of train_step.py beside this file).
Prints one JSON line: images/s and seconds per epoch (median over the timed epochs)."""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import UFlow  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--channels", default="8,16,32")
    p.add_argument("--sizes", default="64,32,16")
    p.add_argument("--flow-steps", type=int, default=4)
    p.add_argument("--images", type=int, default=60)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--layer-norm", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--device", default="cpu", help="cpu or cuda (bench:gpu compares against PyTorch CUDA)")
    args = p.parse_args()
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    channels = [int(c) for c in args.channels.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    model = UFlow(channels, sizes, args.flow_steps, bool(args.layer_norm)).to(dev)
    feats = [torch.randn(args.images, c, s, s).to(dev) for c, s in zip(channels, sizes)]
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=args.lr, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(0)

    def epoch():
        perm = torch.randperm(args.images, generator=gen)
        total = 0.0
        for i in range(0, args.images, args.batch):
            idx = perm[i : i + args.batch].to(dev)
            opt.zero_grad()
            zs, logdet = model([f[idx] for f in feats])
            loss = torch.mean(sum(0.5 * torch.sum(z**2, dim=(1, 2, 3)) for z in zs) - logdet)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return total / args.images

    for _ in range(args.warmup):
        epoch()
    times, cpu, losses = [], [], []
    for _ in range(args.epochs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        losses.append(epoch())
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    s = statistics.median(times)
    print(json.dumps({"torch": torch.__version__, "device": args.device, "threads": torch.get_num_threads(), "seconds_per_epoch": s, "cpu_seconds_per_epoch": statistics.median(cpu), "images_per_second": args.images / s, "times": times, "cpu_times": cpu, "losses": losses}))


if __name__ == "__main__":
    main()
