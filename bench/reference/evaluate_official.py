#!/usr/bin/python3
"""Reference for bench/evaluate-category.bench.ts: the work of the official U-Flow `evaluate.py -cat
<category>` (spec/cli.md, spec/metrics.md, spec/nfa.md) on one category's test split, in plain
PyTorch / NumPy on the CPU, timed stage by stage from a cold start (nothing cached):

  load     the test images (PIL, Resize to the input size, ToTensor) and their masks (resized,
           then bilinear to 256 and > 0.5), as the official datamodule;
  model    the Keras MobileNetV2 in torch (mobilenet_v2_torch.py, the product's bundled weights)
           and the U-Flow graph (train_step.py) with the run's shapes;
  forward  backbone + flow + anomaly map 1 − mean_s up(exp(−0.5·mean_c z²)) at 256, batches of 10
           (the official batch_test);
  nfa      the tree NFA per image (nfa_metrics.py: skimage max_tree + networkx, per scale, bilinear
           to 256, min over scales, mpmath logNT), as evaluate.py's mIoU;
  miou     mIoU at log NFA = 0 (official miou.py: label threshold per batch, IoU per image, mean);
  auroc    pixel AUROC over all pixels (rank-based, = sklearn roc_auc_score) and image AUROC (max);
  aupro    the anomalib-2022 AUPRO loop (nfa_metrics.py); its per-region ROCs each sort the whole
           background, so `--aupro-regions K` runs K evenly spaced regions and scales that loop's
           time by regions / K (0: all regions, the exact value).

The flow's weights are random (seeded), not a trained model's: the work and its shapes are the
official's, the metric values are not the run's. What evaluate.py does on top is left out, so this
is a lower bound of its time: it loads three checkpoints (models/auc, pro, iou) and runs the
backbone and the flow over the test split once per metric, finds the "fair" likelihood threshold
on the training images (another pass), and sweeps mIoU over many thresholds (only 0 here).

Prints one JSON line: seconds per stage, the total (with the AUPRO loop scaled when sampled), and
the values. Needs torch, numpy, scipy, skimage, networkx, mpmath and PIL (Debian: python3-torch,
python3-scipy, python3-skimage, python3-networkx, python3-mpmath, python3-pil)."""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from uflow_official import auroc, load_test_split, map_input  # noqa: E402
from train_step import UFlow  # noqa: E402
from mobilenet_v2_torch import load_mobilenet_v2  # noqa: E402
import nfa_metrics  # noqa: E402

TARGET = 256
EPS = float(np.finfo(float).eps)


def load_test(root, category, size):
    """Test images [N,3,S,S] in [0,1], binary masks [N,256,256], labels, in the official order."""
    images, masks, labels, _ = load_test_split(root, category, size)
    m = torch.stack(masks)
    if m.shape[-1] != TARGET:
        m = F.interpolate(m, size=(TARGET, TARGET), mode="bilinear", align_corners=False)
    return torch.stack(images), (m > 0.5)[:, 0].numpy(), np.array(labels)


def anomaly_map(zs):
    p = [F.interpolate(torch.exp(-0.5 * torch.mean(z**2, dim=1, keepdim=True)), size=(TARGET, TARGET), mode="bilinear", align_corners=False) for z in zs]
    return (1 - torch.mean(torch.stack(p), dim=0))[:, 0]


def iou_batch(score, target):
    """official miou.py for one update(): label threshold over the batch, IoU per image at thr 0."""
    s = score.reshape(score.shape[0], -1)
    t = target.reshape(target.shape[0], -1).astype(np.float32)
    t = t > (t.max() - t.min()) / 2
    pred = s > 0
    return ((pred & t).sum(1) + EPS) / ((pred | t).sum(1) + EPS)


def main():
    repo = os.path.dirname(os.path.dirname(here))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("UFLOW_DATASETS_DIR", os.path.join(repo, "..", "shared", "datasets")))
    p.add_argument("--category", default="metal_plate")
    p.add_argument("--weights", default=os.path.join(repo, "assets", "backbones", "mobilenet_v2_035_imagenet"))
    p.add_argument("--taps", default="block_2_add,block_5_add,block_12_add")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--flow-steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--aupro-regions", type=int, default=16, help="regions run in the AUPRO loop (0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t = {}
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        t[name] = now - clock
        clock = now

    images, masks, labels = load_test(args.data, args.category, args.input_size)
    lap("load")
    backbone = load_mobilenet_v2(args.weights, taps=args.taps.split(","))
    with torch.no_grad():
        probe = backbone(map_input(images[:1], "range"))
    channels = [f.shape[1] for f in probe]
    sizes = [f.shape[2] for f in probe]
    model = UFlow(channels, sizes, args.flow_steps, True, seed=args.seed).eval()
    lap("model")
    maps, zs_all = [], []
    with torch.no_grad():
        for i in range(0, len(images), args.batch):
            zs, _ = model(backbone(map_input(images[i : i + args.batch], "range")))
            maps.append(anomaly_map(zs))
            zs_all.append([z.numpy() for z in zs])
    maps = torch.cat(maps).numpy()
    lap("forward")
    nfa = [nfa_metrics.neg_log_nfa_tree(zs, TARGET) for zs in zs_all]
    lap("nfa")
    ious = np.concatenate([iou_batch(s, masks[i * args.batch : i * args.batch + len(s)]) for i, s in enumerate(nfa)])
    miou = float(ious.mean())
    lap("miou")
    pixel = auroc(maps.ravel(), masks.ravel())
    image = auroc(maps.reshape(len(maps), -1).max(1), labels)
    lap("auroc")
    k = args.aupro_regions if args.aupro_regions > 0 else None
    res = nfa_metrics.aupro(maps, masks.astype(np.uint8), 0.3, max_regions=k)
    lap("aupro")
    regions, ran, loop = res[3], res[4], res[5]
    # The per-region loop scaled to all regions; the rest of aupro() (labelling, global ROC) as timed.
    aupro_seconds = t["aupro"] + loop * (regions / ran - 1)
    measured = sum(t.values())
    total = measured - t["aupro"] + aupro_seconds
    print(json.dumps({
        "category": args.category,
        "images": int(len(images)),
        "defective": int(labels.sum()),
        "channels": channels,
        "sizes": sizes,
        "latent_channels": [int(z.shape[1]) for z in zs_all[0]],
        "seconds": {k2: round(v, 3) for k2, v in t.items()},
        "aupro_regions": regions,
        "aupro_regions_run": ran,
        "aupro_seconds": round(aupro_seconds, 3),
        "measured_seconds": round(measured, 3),
        "total_seconds": round(total, 3),
        "values": {"pixel_auroc": pixel, "image_auroc": image, "miou_at_0": miou, "aupro": res[0] if ran == regions else None},
        "weights": "random flow weights (seeded): the work is the official's, the values are not a trained model's",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
