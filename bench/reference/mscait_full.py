#!/usr/bin/env python3
"""PyTorch reference for bench/mscait-full.bench.ts: U-Flow's MS-CaiT feature path at full size
(spec/uflow.md 3.1) with random weights of the released shapes: cait_m48_448 blocks[0..40] on the
normalised 448 image, cait_s24_224 blocks[0..20] on its bicubic (align_corners=True) resize to 224,
each followed by its final LayerNorm and reshaped to [B, C, h, w].

timm is not needed (nor installed here): the CaiT block is written out as timm v0.9 defines it
(LayerScale block, talking-heads attention: proj_l mixes the heads' logits before the softmax and
proj_w the probabilities after it, qkv with bias, exact GELU, LayerNorm eps 1e-6). Only the blocks
that run are built. Prints one JSON line: seconds per image (median), CPU seconds, peak RSS."""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class TalkingHeadAttn(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj_l = nn.Linear(heads, heads)
        self.proj_w = nn.Linear(heads, heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        attn = attn.softmax(dim=-1)
        attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class LayerScaleBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TalkingHeadAttn(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)
        self.gamma_1 = nn.Parameter(torch.full((dim,), 0.1))
        self.gamma_2 = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x):
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))


class CaitTokens(nn.Module):
    """patch_embed -> + pos_embed -> blocks[0..used-1] -> norm -> [B, C, g, g]."""

    def __init__(self, img, patch, dim, heads, used):
        super().__init__()
        self.grid = img // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.randn(1, self.grid * self.grid, dim) * 0.02)
        self.blocks = nn.ModuleList([LayerScaleBlock(dim, heads) for _ in range(used)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        b, n, c = x.shape
        return x.permute(0, 2, 1).reshape(b, c, self.grid, self.grid)


class MsCait(nn.Module):
    def __init__(self):
        super().__init__()
        self.extractor1 = CaitTokens(448, 16, 768, 16, 41)  # cait_m48_448, 41 of 48 blocks
        self.extractor2 = CaitTokens(224, 16, 384, 8, 21)  # cait_s24_224, 21 of 24 blocks

    def forward(self, x):
        x2 = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=True)
        return [self.extractor1(x), self.extractor2(x2)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MsCait().eval()
    params = sum(q.numel() for q in model.parameters())
    x = torch.randn(1, 3, 448, 448)
    times, cpu = [], []
    with torch.no_grad():
        for i in range(args.warmup + args.images):
            c0 = time.process_time()
            t0 = time.perf_counter()
            f1, f2 = model(x)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if i >= args.warmup:
                times.append(dt)
                cpu.append(dc)
        # GEMM speed of this torch build (the same probe as server/paper-cost.ts): Debian's
        # python3-torch is built with BLAS_INFO=generic, far slower than MKL/OpenBLAS builds.
        a, b = torch.randn(784, 768), torch.randn(768, 2304)
        a @ b
        c0 = time.process_time()
        for _ in range(3):
            a @ b
        gemm_gflops = 2 * 784 * 768 * 2304 / ((time.process_time() - c0) / 3) / 1e9
    blas = next((part.split("=", 1)[1] for part in torch.__config__.show().replace(",", " ").split() if part.startswith("BLAS_INFO=")), "?")
    assert list(f1.shape) == [1, 768, 28, 28] and list(f2.shape) == [1, 384, 14, 14]
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "params_used": params,
                "s_per_image": statistics.median(times),
                "cpu_s_per_image": statistics.median(cpu),
                "times": times,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "blas": blas,
                "gemm_gflops": gemm_gflops,
                "finite": bool(torch.isfinite(f1).all() and torch.isfinite(f2).all()),
            }
        )
    )


if __name__ == "__main__":
    main()
