#!/usr/bin/env python3
"""The official U-Flow training and validation (spec/uflow.md §2, §5, §6; spec/metrics.md), in
plain PyTorch on CPU, with the shared Keras MobileNetV2 (bench/reference/mobilenet_v2_torch.py)
as the backbone: the yardstick for `uflow train` / `uflow evaluate` on real images.

What it reproduces from the official code:
- datamodule: PIL open → RGB, torchvision Resize(input_size) (PIL bilinear, antialiased),
  ToTensor; masks the same, then thresholded at > 0.5 for the metrics;
- features from the frozen backbone, computed once (the backbone is frozen and in eval mode, so
  this is what every epoch sees);
- UFlow = trainable LayerNorm([C,H,W]) per level + the U-shaped flow (train_step.py's graph);
- loss mean_b(Σ_s 0.5·Σ z² − logdet); Adam(lr, weight_decay); LinearLR(1 → 0.4, T=25000)
  stepped per epoch; shuffled batches, the last partial batch kept; max_epochs = epochs + 1;
- validation on the test split every epoch: anomaly map 1 − mean_s up(exp(−0.5·mean_c z²)) at
  input_size; pixel AUROC over all pixels, image AUROC on the map's max; best epoch per metric;
  optional early stopping on pixel AUROC (official patience 20).

`--input-map` says how [0,1] images reach the backbone: `range` maps them linearly onto [-1,1]
(the Keras MobileNet's own range); `imagenet` feeds the official Normalize(ImageNet mean, std)
output unchanged; `imagenet-range` maps the Normalize output's [min,max] onto [-1,1].

Prints one JSON line per validated epoch to --log (if given) and a summary JSON line on stdout.
Needs only torch, numpy, scipy and PIL (Debian's python3-torch etc. on these machines)."""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.stats import rankdata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import UFlow  # noqa: E402

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def resize_shorter(img, size):
    """torchvision Resize(int) on a PIL image: the shorter side becomes `size`, bilinear (PIL antialiases).
    Non-square images (magnetic_tile) are resized straight to size×size, as uflow does: the official
    code only sees square images, and batches need one shape."""
    w, h = img.size
    if w != h:
        return img.resize((size, size), Image.BILINEAR)
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    return img.resize((nw, nh), Image.BILINEAR)


def to_tensor(img):
    a = np.asarray(img, dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def list_images(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXT))


def load_test_split(root, category, size):
    """The test split in the official order: images and masks as [1|3,H,W] tensors in [0,1], labels, names."""
    cat = os.path.join(root, category)
    images, masks, labels, names = [], [], [], []
    for defect in sorted(os.listdir(os.path.join(cat, "test"))):
        for p in list_images(os.path.join(cat, "test", defect)):
            img = resize_shorter(Image.open(p).convert("RGB"), size)
            images.append(to_tensor(img))
            if defect == "good":
                masks.append(torch.zeros(1, img.size[1], img.size[0]))
                labels.append(0)
            else:
                stem = os.path.splitext(os.path.basename(p))[0]
                m = Image.open(os.path.join(cat, "ground_truth", defect, stem + "_mask.png")).convert("L")
                masks.append(to_tensor(resize_shorter(m, size)))
                labels.append(1)
            names.append(f"{defect}/{os.path.basename(p)}")
    return images, masks, labels, names


def load_split(root, category, size):
    cat = os.path.join(root, category)
    train = [to_tensor(resize_shorter(Image.open(p).convert("RGB"), size)) for p in list_images(os.path.join(cat, "train", "good"))]
    images, masks, labels, names = load_test_split(root, category, size)
    return torch.stack(train), torch.stack(images), torch.stack(masks), np.array(labels), names


def map_input(x, how):
    if how == "range":
        return x * 2.0 - 1.0
    n = (x - IMAGENET_MEAN) / IMAGENET_STD
    if how == "imagenet":
        return n
    if how == "imagenet-range":
        lo = (0 - IMAGENET_MEAN) / IMAGENET_STD
        hi = (1 - IMAGENET_MEAN) / IMAGENET_STD
        return (n - lo) / (hi - lo) * 2.0 - 1.0
    raise ValueError(how)


def extract(backbone, images, how, batch=8):
    outs = None
    with torch.no_grad():
        for i in range(0, len(images), batch):
            f = backbone(map_input(images[i : i + batch], how))
            outs = [[t] for t in f] if outs is None else [o + [t] for o, t in zip(outs, f)]
    return [torch.cat(o) for o in outs]


def auroc(scores, labels):
    """Area under the ROC (ties by the trapezoid rule = average ranks), as sklearn's roc_auc_score."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    pos = labels.sum()
    neg = labels.size - pos
    r = rankdata(scores)
    return float((r[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def anomaly_maps(model, feats, size, batch=8):
    maps = []
    model.eval()
    with torch.no_grad():
        for i in range(0, feats[0].shape[0], batch):
            zs, _ = model([f[i : i + batch] for f in feats])
            p = [F.interpolate(torch.exp(-0.5 * torch.mean(z**2, dim=1, keepdim=True)), size=(size, size), mode="bilinear", align_corners=False) for z in zs]
            maps.append(1 - torch.mean(torch.stack(p), dim=0))
    model.train()
    return torch.cat(maps)[:, 0]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p.add_argument("--data", default=os.environ.get("UFLOW_DATASETS_DIR", os.path.join(repo, "..", "shared", "datasets")))
    p.add_argument("--category", default="metal_plate")
    p.add_argument("--weights", default=os.path.join(os.environ.get("UFLOW_WEIGHTS_DIR", os.path.join(repo, "..", "shared", "weights")), "mobilenet_v2_035_imagenet"))
    p.add_argument("--taps", default="block_2_add,block_5_add,block_12_add")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--input-map", choices=["range", "imagenet", "imagenet-range"], default="range")
    p.add_argument("--flow-steps", type=int, default=4)
    p.add_argument("--epochs", type=int, default=200, help="config epochs; the official trainer runs epochs + 1")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--patience", type=int, default=0, help="early stopping on pixel AUROC (official: 20; 0 = off)")
    p.add_argument("--validate-every", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log", help="JSONL file for per-epoch metrics")
    p.add_argument("--init", help="safetensors file with a starting state (reference names), e.g. another implementation's initial weights")
    p.add_argument("--save", help="safetensors file for the final state (reference names)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from mobilenet_v2_torch import load_mobilenet_v2  # noqa: E402

    t0 = time.perf_counter()
    train, test, masks, labels, _ = load_split(args.data, args.category, args.input_size)
    backbone = load_mobilenet_v2(args.weights, taps=args.taps.split(","))
    train_f = extract(backbone, train, args.input_map)
    test_f = extract(backbone, test, args.input_map)
    gt = (F.interpolate(masks, size=(args.input_size, args.input_size), mode="bilinear", align_corners=False) > 0.5).numpy().ravel()
    channels = [f.shape[1] for f in train_f]
    sizes = [f.shape[2] for f in train_f]
    model = UFlow(channels, sizes, args.flow_steps, True, seed=args.seed)
    if args.init:
        from train_step import load_reference_state, read_safetensors  # noqa: E402

        load_reference_state(model, args.flow_steps, read_safetensors(args.init)[0])
    opt = torch.optim.Adam([{"params": [q for q in model.parameters() if q.requires_grad], "initial_lr": args.lr}], lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.4, total_iters=25000)
    prep = time.perf_counter() - t0
    log = open(args.log, "w") if args.log else None
    n = train_f[0].shape[0]
    best = {"pixel_auroc": (-1, 0), "image_auroc": (-1, 0)}
    since_best = 0
    train_seconds = 0.0
    history = []
    for epoch in range(args.epochs + 1):
        t1 = time.perf_counter()
        perm = torch.randperm(n)
        total = 0.0
        for i in range(0, n, args.batch):
            idx = perm[i : i + args.batch]
            opt.zero_grad()
            zs, logdet = model([f[idx] for f in train_f])
            loss = torch.mean(sum(0.5 * torch.sum(z**2, dim=(1, 2, 3)) for z in zs) - logdet)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        train_seconds += time.perf_counter() - t1
        if not math.isfinite(total):
            print(json.dumps({"error": f"loss is {total} at epoch {epoch}"}))
            return 1
        if (epoch + 1) % args.validate_every and epoch != args.epochs:
            continue
        maps = anomaly_maps(model, test_f, args.input_size)
        row = {
            "epoch": epoch,
            "loss": total / n,
            "pixel_auroc": auroc(maps.numpy().ravel(), gt),
            "image_auroc": auroc(maps.flatten(1).max(dim=1).values.numpy(), labels),
        }
        history.append(row)
        if log:
            log.write(json.dumps(row) + "\n")
            log.flush()
        for k in best:
            if row[k] > best[k][0]:
                best[k] = (row[k], epoch)
        since_best = 0 if best["pixel_auroc"][1] == epoch else since_best + args.validate_every
        if args.patience and since_best >= args.patience:
            break
    if args.save:
        from safetensors_io import write_safetensors  # noqa: E402
        from train_step import named_reference_params  # noqa: E402

        write_safetensors(args.save, {k: v.detach().numpy() for k, v in named_reference_params(model, args.flow_steps).items()})
    print(
        json.dumps(
            {
                "category": args.category,
                "input_map": args.input_map,
                "seed": args.seed,
                "epochs_run": history[-1]["epoch"] + 1,
                "best_pixel_auroc": best["pixel_auroc"][0],
                "best_pixel_epoch": best["pixel_auroc"][1],
                "best_image_auroc": best["image_auroc"][0],
                "best_image_epoch": best["image_auroc"][1],
                "last": history[-1],
                "first": history[0],
                "seconds_per_epoch": train_seconds / (history[-1]["epoch"] + 1),
                "prep_seconds": prep,
                "channels": channels,
                "torch": torch.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
