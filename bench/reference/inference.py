#!/usr/bin/env python3
"""PyTorch reference for bench/onnx-vs-tfjs.bench.ts: inference per image, as predict runs it before
the NFA: ImageNet normalisation, torchvision ResNet-18 up to layer3 (random weights: the time does not
depend on them), U-Flow (train_step.py's graph: LayerNorm, 4 flow steps) and the anomaly map
1 − mean_s upsample(exp(−0.5·mean_c z²)) at the evaluation size, read back. Batch 1, median after
warm-up. Prints one JSON line."""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

from train_step import UFlow


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--flow-steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    s = args.input_size
    net = torchvision.models.resnet18().eval().to(dev)
    sizes = [s // 4, s // 8, s // 16]
    flow = UFlow([64, 128, 256], sizes, args.flow_steps, True).eval().to(dev)
    mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
    image = torch.rand(1, 3, s, s, device=dev)

    def infer():
        with torch.no_grad():
            x = (image - mean) / std
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
            f1 = net.layer1(x)
            f2 = net.layer2(f1)
            f3 = net.layer3(f2)
            zs, _ = flow([f1, f2, f3])
            maps = [F.interpolate(torch.exp(-0.5 * torch.mean(z**2, dim=1, keepdim=True)), size=(s, s), mode="bilinear", align_corners=False) for z in zs]
            anomaly = 1 - torch.mean(torch.stack(maps), dim=0)
            # read back, as the bench reads the latents and the map back
            return [z.cpu() for z in zs], anomaly.cpu()

    for _ in range(args.warmup):
        infer()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        infer()
        times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"ms_per_image": statistics.median(times), "times_ms": times, "torch": torch.__version__, "device": args.device, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
