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

import safetensors_io


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
        logdet = torch.zeros(x.shape[0], device=x.device)
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


def read_safetensors(path):
    """({name: torch tensor}, metadata) from a float32 safetensors file."""
    arrays, meta = safetensors_io.read_safetensors(path)
    return {k: torch.from_numpy(a) for k, a in arrays.items()}, meta


def load_reference_state(model, flow_steps, state):
    """Loads `flow.module_list.<i>.*` / `feature_extractor.feature_normalizations.<i>.*` names."""
    with torch.no_grad():
        if model.norms is not None:
            for i, n in enumerate(model.norms):
                n.weight.copy_(state[f"feature_extractor.feature_normalizations.{i}.weight"])
                n.bias.copy_(state[f"feature_extractor.feature_normalizations.{i}.bias"])
        for j, stage in enumerate(model.stages):
            for k, block in enumerate(stage):
                p = f"flow.module_list.{j * (flow_steps + 3) + k}."
                block.global_scale.copy_(state[p + "global_scale"])
                block.global_offset.copy_(state[p + "global_offset"])
                block.w_perm.copy_(state[p + "w_perm"])
                for q in ("0", "2"):
                    block.subnet[int(q)].weight.copy_(state[p + f"subnet.{q}.weight"])
                    block.subnet[int(q)].bias.copy_(state[p + f"subnet.{q}.bias"])


def named_reference_params(model, flow_steps):
    """Trainable parameters under their reference state-dict names (PyTorch layouts)."""
    out = {}
    if model.norms is not None:
        for i, n in enumerate(model.norms):
            out[f"feature_extractor.feature_normalizations.{i}.weight"] = n.weight
            out[f"feature_extractor.feature_normalizations.{i}.bias"] = n.bias
    for j, stage in enumerate(model.stages):
        for k, block in enumerate(stage):
            p = f"flow.module_list.{j * (flow_steps + 3) + k}."
            out[p + "global_scale"] = block.global_scale
            out[p + "global_offset"] = block.global_offset
            for q in (0, 2):
                out[p + f"subnet.{q}.weight"] = block.subnet[q].weight
                out[p + f"subnet.{q}.bias"] = block.subnet[q].bias
    return out


def check(path, steps, lr, weight_decay):
    """Parity mode: config, state and features from a safetensors file; Adam steps; losses and final state as JSON."""
    state, meta = read_safetensors(path)
    cfg = json.loads(meta["config"])
    sizes = [cfg["inputSize"] // f for f in cfg["scaleFactors"]]
    model = UFlow(cfg["channels"], sizes, cfg["flowSteps"], cfg["layerNorm"])
    load_reference_state(model, cfg["flowSteps"], state)
    feats = [state[f"input_scale{i + 1}"] for i in range(len(sizes))]
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=lr, weight_decay=weight_decay)
    losses = []
    grads = {}
    for i in range(steps):
        opt.zero_grad()
        zs, logdet = model(feats)
        loss = torch.mean(sum(0.5 * torch.sum(z**2, dim=(1, 2, 3)) for z in zs) - logdet)
        loss.backward()
        if i == 0:
            grads = {k: v.grad.reshape(-1).tolist() for k, v in named_reference_params(model, cfg["flowSteps"]).items()}
        opt.step()
        losses.append(loss.item())
    zs, logdet = model(feats)
    final = torch.mean(sum(0.5 * torch.sum(z**2, dim=(1, 2, 3)) for z in zs) - logdet).item()
    params = {}
    if model.norms is not None:
        params["feature_extractor.feature_normalizations.0.weight"] = model.norms[0].weight.detach().reshape(-1).tolist()
    for j, stage in enumerate(model.stages):
        for k, block in enumerate(stage):
            p = f"flow.module_list.{j * (cfg['flowSteps'] + 3) + k}."
            params[p + "global_scale"] = block.global_scale.detach().reshape(-1).tolist()
            params[p + "subnet.2.bias"] = block.subnet[2].bias.detach().reshape(-1).tolist()
            params[p + "subnet.0.weight"] = block.subnet[0].weight.detach().reshape(-1).tolist()
    print(json.dumps({"losses": losses, "final_loss": final, "params": params, "grads": grads}))


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
    p.add_argument("--check", help="parity mode: a safetensors file with config metadata, state and input_scale<i> features")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--input-size", type=int, default=256, help="size of the anomaly map of the inference timing")
    p.add_argument("--device", default="cpu", help="cpu or cuda (bench:gpu compares against PyTorch CUDA)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if args.check:
        check(args.check, args.steps, args.lr, args.weight_decay)
        return
    torch.manual_seed(0)
    channels = [int(c) for c in args.channels.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    model = UFlow(channels, sizes, args.flow_steps, bool(args.layer_norm)).to(dev)
    feats = [torch.randn(args.batch, c, s, s).to(dev) for c, s in zip(channels, sizes)]
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
    times, cpu, losses = [], [], []
    for _ in range(args.steps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    # One inference: one image's features → latents → anomaly map 1 − mean_s upsample(exp(−0.5·mean_c z²)) at the input size.
    one = [f[:1] for f in feats]
    input_size = args.input_size

    def infer():
        with torch.no_grad():
            zs, _ = model(one)
            p = [torch.nn.functional.interpolate(torch.exp(-0.5 * torch.mean(z**2, dim=1, keepdim=True)), size=(input_size, input_size), mode="bilinear", align_corners=False) for z in zs]
            return (1 - torch.mean(torch.stack(p), dim=0)).max().item()

    for _ in range(args.warmup):
        infer()
    inf_times = []
    for _ in range(max(args.steps, 5)):
        t0 = time.perf_counter()
        infer()
        inf_times.append((time.perf_counter() - t0) * 1000)
    print(
        json.dumps(
            {
                "ms_per_inference": statistics.median(inf_times),
                "ms_per_step": statistics.median(times),
                "cpu_ms_per_step": statistics.median(cpu),
                "times_ms": times,
                "cpu_ms": cpu,
                "losses": losses,
                "torch": torch.__version__,
                "device": args.device,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
