#!/usr/bin/python3
"""Golden vectors for non-square and non-divisible input sizes (issue 12, item 3), written by the
PyTorch reference into test/golden-shapes/ (small: random weights, few channels).

Run with Debian's python3-torch and python3-torchvision (torch 1.13, torchvision 0.14):
    /usr/bin/python3 bench/reference/golden_shapes.py [out_dir]

What runs here is the reference code or a plain-torch copy of it:
- ResNet: torchvision's own BasicBlock / Bottleneck modules (the blocks resnet18 and
  wide_resnet50_2 are made of) behind torchvision's stem (conv 7×7/2 p3, BN, ReLU, max-pool
  3×3/2 p1), scaled down (stem 8, one block per stage), random weights and BN statistics, eval
  mode. Level sizes are whatever PyTorch's conv / pool arithmetic gives: ⌊(H + 2p − k)/s⌋ + 1.
- U-Flow: LayerNorm([C, h, w]) per level at the real level sizes, then the U-shaped graph
  (train_step.py's AllInOne block, the FrEIA AllInOneBlock math; IRevNet upsampling =
  pixel_shuffle's channel-major order; concat features first). Sizes whose levels do not nest
  (upsampled coarse level ≠ finer level) fail in torch.cat exactly as FrEIA's Concat does: the
  `uflow_100x70_refused` case records that error.
- FastFlow (anomalib layout): LayerNorm([C, h, w]) at the real level sizes (anomalib sizes it
  int(H/s) × int(W/s), which does not match a non-divisible backbone output, so anomalib cannot
  run such sizes; the real sizes are what its flows would need), SequenceINN of AllInOne blocks
  (k3, k1), loss, anomaly map −mean_levels up(exp(−0.5·mean_c z²)) at the input size.
- Maps at a non-square evaluation size: U-Flow's 1 − mean_s up(exp(−0.5·mean_c z²)) (bilinear,
  align_corners=False) and the block NFA (scipy's binomial logsf computed exactly with math.comb,
  bicubic align_corners=True upsampling in float64, as the official nfa_block.py).
- Masks: PIL bilinear Resize((h, w)) of the 0/255 mask (the datamodule), ToTensor, then
  F.interpolate(bilinear, align_corners=False) to the evaluation size (evaluate.py), > 0.5.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision.models.resnet import BasicBlock, Bottleneck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402
from train_step import AllInOne  # noqa: E402

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


# ----------------------------------------------------------------------------- backbones
class SmallResNet(nn.Module):
    """torchvision's ResNet layout (names and strides) with small widths and one block per stage."""

    def __init__(self, block, planes=(8, 16, 32), stem=8, base_width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = stem
        for i, p in enumerate(planes):
            stride = 1 if i == 0 else 2
            out = p * block.expansion
            down = None
            if stride != 1 or inplanes != out:
                down = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
            kw = {"base_width": base_width} if block is Bottleneck else {}
            setattr(self, f"layer{i + 1}", nn.Sequential(block(inplanes, p, stride, down, **kw)))
            inplanes = out

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(1, 4):
            x = getattr(self, f"layer{i}")(x)
            outs.append(x)
        return outs


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() == 4:
                fan = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=gen) * math.sqrt(2.0 / fan))
            elif "bn" in name or "downsample.1" in name:
                p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + (0.75 if name.endswith("weight") else -0.25))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) * 0.5 + 0.75)
    return model.eval()


def backbone_state(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


# ----------------------------------------------------------------------------- flows
class UFlowHW(nn.Module):
    """train_step.UFlow with LayerNorm([C, h, w]) at the real (possibly non-square) level sizes."""

    def __init__(self, channels, sizes, flow_steps, seed):
        super().__init__()
        rng = np.random.RandomState(seed)
        self.norms = nn.ModuleList([nn.LayerNorm([c, h, w]) for c, (h, w) in zip(channels, sizes)])
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
                zs[level] = x[:, a:]
                x = torch.cat((feats[level - 1], F.pixel_shuffle(x[:, :a], 2)), 1)
            else:
                zs[0] = x
        return zs, logdet


def randomise_flow(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, AllInOne):
                m.global_scale.copy_(m.global_scale + torch.randn(m.global_scale.shape, generator=gen) * 0.5)
                m.global_offset.copy_(torch.randn(m.global_offset.shape, generator=gen) * 0.1)
                for conv in (m.subnet[0], m.subnet[2]):
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.3)
                    conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def block_params(block, prefix, subnet_names=("0", "2")):
    out = {
        prefix + "global_scale": block.global_scale,
        prefix + "global_offset": block.global_offset,
        prefix + "w_perm": block.w_perm,
        prefix + "w_perm_inv": block.w_perm.transpose(0, 1).contiguous(),
    }
    for q, name in zip((0, 2), subnet_names):
        out[prefix + f"subnet.{name}.weight"] = block.subnet[q].weight
        out[prefix + f"subnet.{name}.bias"] = block.subnet[q].bias
    return out


def uflow_state(model, flow_steps):
    out = {}
    for i, n in enumerate(model.norms):
        out[f"feature_extractor.feature_normalizations.{i}.weight"] = n.weight
        out[f"feature_extractor.feature_normalizations.{i}.bias"] = n.bias
    for j, stage in enumerate(model.stages):
        for k, block in enumerate(stage):
            out.update(block_params(block, f"flow.module_list.{j * (flow_steps + 3) + k}."))
        if j < len(model.splits):
            a = model.splits[j]
            kern = torch.zeros(a, 1, 2, 2)
            for i in range(a):
                kern[i, 0, (i % 4) // 2, i % 2] = 1
            out[f"flow.module_list.{j * (flow_steps + 3) + flow_steps + 1}.downsample_kernel"] = kern
    return {k: v.detach().numpy() for k, v in out.items()}


class FastFlowHW(nn.Module):
    def __init__(self, channels, sizes, flow_steps, seed):
        super().__init__()
        rng = np.random.RandomState(seed)
        self.norms = nn.ModuleList([nn.LayerNorm([c, h, w]) for c, (h, w) in zip(channels, sizes)])
        self.blocks = nn.ModuleList([nn.ModuleList([AllInOne(c, 1 if i % 2 == 1 else 3, rng) for i in range(flow_steps)]) for c in channels])

    def forward(self, feats):
        zs, lds = [], []
        for n, f, blocks in zip(self.norms, feats, self.blocks):
            x = n(f)
            ld = torch.zeros(x.shape[0])
            for b in blocks:
                x, l = b(x)
                ld = ld + l
            zs.append(x)
            lds.append(ld)
        return zs, lds


def fastflow_state(model):
    out = {}
    for i, n in enumerate(model.norms):
        out[f"norms.{i}.weight"] = n.weight
        out[f"norms.{i}.bias"] = n.bias
    for l, blocks in enumerate(model.blocks):
        for i, b in enumerate(blocks):
            out.update(block_params(b, f"fast_flow_blocks.{l}.module_list.{i}.", ("1", "4")))
    return {k: v.detach().numpy() for k, v in out.items()}


# ----------------------------------------------------------------------------- maps
def uflow_anomaly_map(zs, size):
    p = [F.interpolate(torch.exp(-0.5 * torch.mean(z**2, dim=1, keepdim=True)), size=size, mode="bilinear", align_corners=False) for z in zs]
    return 1 - torch.mean(torch.stack(p), dim=0)


def fastflow_anomaly_map(zs, size):
    maps = [F.interpolate(-torch.exp(-0.5 * torch.mean(z**2, dim=1, keepdim=True)), size=size, mode="bilinear", align_corners=False) for z in zs]
    return torch.mean(torch.stack(maps, dim=-1), dim=-1)


def log10_binom_sf(x, n, q):
    """scipy.stats.binom.logsf(x, n, q) / ln 10 = log10 P(X > x) = log10 Σ_{k > ⌊x⌋} C(n,k) q^k (1−q)^(n−k)."""
    k0 = math.floor(x) + 1
    if k0 > n:
        return -math.inf
    if k0 <= 0:
        return 0.0
    s = sum(math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(k0, n + 1))
    return math.log10(s)


def block_nfa(zs, size, win=5, p=0.9):
    """The official nfa_block.py: −(log10 Σ h·w + Σ_s bicubic_ac(log10 binom tail of the window counts)); float64."""
    tau = 2.705543454095404  # chi2.ppf(0.9, 1)
    acc = 0
    per_scale = []
    for s, z in enumerate(zs):
        r = max(int((win / 2**s) // 2), 1)
        hits = (z**2 >= np.float32(tau)).to(torch.float64)
        padded = F.pad(hits, (r, r, r, r), mode="reflect")
        k = 2 * r + 1
        counts = F.avg_pool2d(padded, k, 1) * (k * k)  # window sums per channel
        x = torch.round(counts).sum(dim=1) / z.shape[1]
        n = k * k
        lp = torch.tensor([[[log10_binom_sf(float(v), n, 1 - p) for v in row] for row in img] for img in x.numpy()], dtype=torch.float64)
        per_scale.append(lp)
        acc = acc + F.interpolate(lp[:, None], size=size, mode="bicubic", align_corners=True)[:, 0]
    lognt = float(np.float32(np.log10(sum(z.shape[2] * z.shape[3] for z in zs))))
    return -(lognt + acc), per_scale


# ----------------------------------------------------------------------------- cases
def image(gen, h, w, b=1):
    return torch.rand((b, 3, h, w), generator=gen)


def write_case(out, name, manifest, files):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    index = {}
    for fname, tensors in files.items():
        arrays = {k: (v.detach().numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in tensors.items()}
        write_safetensors(os.path.join(d, f"{fname}.safetensors"), arrays)
        index[fname] = {k: list(a.shape) for k, a in arrays.items()}
    manifest = {**manifest, "tensors": index, "torch": torch.__version__}
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def resnet_case(out, name, block, h, w, seed, base_width=64, planes=(8, 16, 32)):
    gen = torch.Generator().manual_seed(seed)
    net = randomise(SmallResNet(block, planes=planes, base_width=base_width), gen)
    img = image(gen, h, w)
    x = (img - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        layers = net(x)
    write_case(
        out,
        name,
        {
            "what": f"{block.__name__} ResNet (torchvision blocks, stem 8, planes {list(planes)}, base_width {base_width}) at {h}×{w}",
            "input_size": [h, w],
            "level_sizes": [list(t.shape[2:]) for t in layers],
            "tolerance": {"layers": "rtol 1e-4, atol 1e-4"},
        },
        {"weights": backbone_state(net), "data": {"image_raw_0_1": img, **{f"layer{i + 1}": t for i, t in enumerate(layers)}}},
    )
    return net


def features_for(h, w, seed, batch=2):
    gen = torch.Generator().manual_seed(seed)
    net = randomise(SmallResNet(BasicBlock), gen)
    imgs = image(gen, h, w, batch)
    with torch.no_grad():
        return net((imgs - IMAGENET_MEAN) / IMAGENET_STD)


def uflow_case(out, name, h, w, target, seed, steps=2, batch=2):
    feats = features_for(h, w, seed, batch)
    channels = [f.shape[1] for f in feats]
    sizes = [tuple(f.shape[2:]) for f in feats]
    torch.manual_seed(seed)
    model = UFlowHW(channels, sizes, steps, seed)
    randomise_flow(model, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        zs, logdet = model(feats)
        amap = uflow_anomaly_map(zs, target)
        nfa, _ = block_nfa(zs, target)
    loss = torch.mean(sum(0.5 * torch.sum(z**2, dim=(1, 2, 3)) for z in zs) - logdet)
    data = {**{f"input_scale{i + 1}": f for i, f in enumerate(feats)}, **{f"z_scale{i + 1}": z for i, z in enumerate(zs)}}
    data.update({"log_jac_det": logdet, "anomaly_map": amap, "neg_log_nfa_block": nfa.to(torch.float32)})
    write_case(
        out,
        name,
        {
            "what": f"U-Flow (LayerNorm + U-shaped graph) on ResNet features of a {h}×{w} input, levels {[list(s) for s in sizes]}",
            "input_size": [h, w],
            "level_sizes": [list(s) for s in sizes],
            "scale_factors": [4, 8, 16],
            "channels": channels,
            "flow_steps": steps,
            "map_size": list(target),
            "loss": float(loss),
            "nfa": {"win_size": 5, "p": 0.9, "note": "block NFA, standard precision; stored as float32"},
            "tolerance": {"z": "rtol 1e-4, atol 1e-4", "log_jac_det": "rtol 1e-4, atol 1e-2", "anomaly_map": "rtol 1e-5, atol 1e-5", "neg_log_nfa_block": "atol 1e-3"},
        },
        {"weights": uflow_state(model, steps), "data": data},
    )


def uflow_refused_case(out, name, h, w, seed):
    feats = features_for(h, w, seed, batch=1)
    channels = [f.shape[1] for f in feats]
    sizes = [tuple(f.shape[2:]) for f in feats]
    model = UFlowHW(channels, sizes, 2, seed)
    try:
        with torch.no_grad():
            model(feats)
        error = None
    except RuntimeError as e:
        error = str(e).split("\n")[0]
    write_case(
        out,
        name,
        {
            "what": f"U-Flow on ResNet features of a {h}×{w} input: the levels do not nest, the reference graph fails",
            "input_size": [h, w],
            "level_sizes": [list(s) for s in sizes],
            "channels": channels,
            "reference_error": error,
        },
        {},
    )


def fastflow_case(out, name, h, w, seed, steps=2, batch=2):
    feats = features_for(h, w, seed, batch)
    channels = [f.shape[1] for f in feats]
    sizes = [tuple(f.shape[2:]) for f in feats]
    model = FastFlowHW(channels, sizes, steps, seed)
    randomise_flow(model, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        zs, lds = model(feats)
        amap = fastflow_anomaly_map(zs, (h, w))
    loss = sum(torch.mean(0.5 * torch.sum(z**2, dim=(1, 2, 3)) - ld) for z, ld in zip(zs, lds))
    data = {**{f"input_scale{i + 1}": f for i, f in enumerate(feats)}, **{f"z_scale{i + 1}": z for i, z in enumerate(zs)}}
    data.update({f"log_jac_det_scale{i + 1}": ld for i, ld in enumerate(lds)})
    data.update({"anomaly_map": amap, "image_score": amap.flatten(1).max(dim=1).values})
    write_case(
        out,
        name,
        {
            "what": f"FastFlow (anomalib layout: LayerNorm + per-level flows, k3/k1, hidden ratio 1.0) on ResNet features of a {h}×{w} input",
            "input_size": [h, w],
            "level_sizes": [list(s) for s in sizes],
            "scale_factors": [4, 8, 16],
            "channels": channels,
            "flow_steps": steps,
            "loss": float(loss),
            "tolerance": {"z": "rtol 1e-4, atol 1e-4", "log_jac_det": "rtol 1e-4, atol 1e-2", "anomaly_map": "rtol 1e-5, atol 1e-6"},
        },
        {"weights": fastflow_state(model), "data": data},
    )


def mask_case(out, name, seed, full=(150, 200), sizes=(((96, 128), (48, 64)), ((100, 70), (64, 45)), ((96, 128), (96, 128)))):
    rng = np.random.RandomState(seed)
    H, W = full
    yy, xx = np.mgrid[0:H, 0:W]
    m = np.zeros((H, W), np.uint8)
    for _ in range(4):
        cy, cx, ry, rx = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(4, 30), rng.uniform(4, 30)
        m[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 255
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    Image.fromarray(m, "L").save(os.path.join(d, "mask.png"))
    data, cases = {}, []
    for (h, w), (th, tw) in sizes:
        r = Image.fromarray(m, "L").resize((w, h), Image.BILINEAR)  # torchvision Resize((h, w)) on a PIL image
        t = torch.from_numpy(np.asarray(r, np.float32) / 255.0)[None, None]
        up = F.interpolate(t, size=(th, tw), mode="bilinear", align_corners=False)
        key = f"mask_{h}x{w}_at_{th}x{tw}"
        data[key] = (up > 0.5).to(torch.float32)[0, 0]
        cases.append({"input_size": [h, w], "map_size": [th, tw], "key": key})
    write_case(out, name, {"what": f"a {H}×{W} 0/255 mask (mask.png) resized as the datamodule and evaluate.py do, > 0.5", "full_size": [H, W], "cases": cases}, {"data": data})


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "golden-shapes")
    out = os.path.abspath(out)
    torch.set_num_threads(1)
    resnet_case(out, "resnet_basic_96x128", BasicBlock, 96, 128, seed=1)
    resnet_case(out, "resnet_basic_100x70", BasicBlock, 100, 70, seed=2)
    resnet_case(out, "resnet_bottleneck_100x70", Bottleneck, 100, 70, seed=3, base_width=128, planes=(4, 8, 16))
    uflow_case(out, "uflow_96x128", 96, 128, (48, 64), seed=4, batch=1)
    uflow_case(out, "uflow_110x78", 110, 78, (64, 45), seed=5)
    uflow_refused_case(out, "uflow_100x70_refused", 100, 70, seed=6)
    fastflow_case(out, "fastflow_96x128", 96, 128, seed=7, batch=1)
    fastflow_case(out, "fastflow_100x70", 100, 70, seed=8)
    mask_case(out, "masks", seed=9)
    print(out)


if __name__ == "__main__":
    main()
