"""Keras MobileNetV2 (the TensorFlow.js layers export in shared/weights) in plain PyTorch.

So that the official U-Flow training code can be reproduced in PyTorch with the same frozen
backbone as the TypeScript product. `model.json` and `weights.bin` are parsed here with numpy
(float32 little-endian, weights concatenated in manifest order) and the Keras layer graph is
walked generically: InputLayer, ZeroPadding2D, Conv2D, DepthwiseConv2D, BatchNormalization,
ReLU and Add, each with its own config (strides, 'same'/'valid' padding, use_bias, epsilon...).
Only the ancestors of the tapped layers are built, and the forward stops at the last tap.

    model = load_mobilenet_v2(dir)   # dir holds model.json + weights.bin
    feats = model(x)                 # x: NCHW float in [-1, 1]; list of NCHW taps, finest first

Self-check against the project's tfjs extractor (from the repo root):

    /usr/bin/python3 bench/reference/mobilenet_v2_torch.py
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

DEFAULT_TAPS = ('block_2_add', 'block_5_add', 'block_12_add')


def _same_pad(x, kernel, stride, dilation):
    """TensorFlow 'same' padding: total = max((ceil(n/s)-1)*s + (k-1)*d + 1 - n, 0), the odd pixel at bottom/right."""
    pads = []
    for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x


class KerasConv(nn.Module):
    """Conv2D or DepthwiseConv2D (channels_last kernels converted to OIHW), TF padding semantics."""

    def __init__(self, cfg, w, depthwise):
        super().__init__()
        if cfg.get('data_format', 'channels_last') != 'channels_last':
            raise ValueError(f"{cfg['name']}: only channels_last exports are supported")
        if cfg.get('activation', 'linear') not in ('linear', None):
            raise ValueError(f"{cfg['name']}: fused activation '{cfg['activation']}' is not supported")
        if depthwise:  # [kh, kw, cin, mult] -> [cin*mult, 1, kh, kw]; TF output channel = c*mult + m
            k = w[cfg['name'] + '/depthwise_kernel']
            kh, kw, cin, mult = k.shape
            weight, self.groups = k.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw), cin
        else:  # [kh, kw, cin, cout] -> [cout, cin, kh, kw]
            weight, self.groups = w[cfg['name'] + '/kernel'].transpose(3, 2, 0, 1), 1
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(weight)))
        self.bias = nn.Parameter(torch.from_numpy(w[cfg['name'] + '/bias'])) if cfg.get('use_bias', True) else None
        self.stride = tuple(cfg.get('strides', (1, 1)))
        self.dilation = tuple(cfg.get('dilation_rate', (1, 1)))
        self.padding = cfg.get('padding', 'valid')
        self.kernel = tuple(self.weight.shape[2:])

    def forward(self, x):
        if self.padding == 'same':
            x = _same_pad(x, self.kernel, self.stride, self.dilation)
        elif self.padding != 'valid':
            raise ValueError(f'padding {self.padding!r} is not supported')
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _batch_norm(cfg, w):
    axis = cfg.get('axis', -1)
    if axis not in (-1, 3, [3], [-1]):
        raise ValueError(f"{cfg['name']}: BatchNormalization over axis {axis} is not supported")
    n = cfg['name']
    mean, var = w[n + '/moving_mean'], w[n + '/moving_variance']
    bn = nn.BatchNorm2d(mean.shape[0], eps=cfg['epsilon'], affine=True)
    bn.running_mean.copy_(torch.from_numpy(mean))
    bn.running_var.copy_(torch.from_numpy(var))
    bn.weight.data.copy_(torch.from_numpy(w[n + '/gamma']) if cfg.get('scale', True) else torch.ones_like(bn.weight))
    bn.bias.data.copy_(torch.from_numpy(w[n + '/beta']) if cfg.get('center', True) else torch.zeros_like(bn.bias))
    return bn


class KerasReLU(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.get('negative_slope') or cfg.get('threshold'):
            raise ValueError(f"{cfg['name']}: ReLU with negative_slope/threshold is not supported")
        self.max_value = cfg.get('max_value')

    def forward(self, x):
        return x.clamp(0, self.max_value) if self.max_value is not None else x.clamp_min(0)


class ZeroPad(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        p = cfg['padding']  # int, [h, w] or [[top, bottom], [left, right]]
        p = [[p, p], [p, p]] if isinstance(p, int) else [[q, q] if isinstance(q, int) else list(q) for q in p]
        self.pad = (p[1][0], p[1][1], p[0][0], p[0][1])

    def forward(self, x):
        return F.pad(x, self.pad)


class Add(nn.Module):
    def forward(self, *xs):
        return sum(xs[1:], xs[0])


def read_weights(model_dir, manifest):
    """{'layer/param': float32 array} from the weight files, in manifest order."""
    out, raw = {}, b''.join(open(os.path.join(model_dir, p), 'rb').read() for g in manifest for p in g['paths'])
    off = 0
    for spec in (s for g in manifest for s in g['weights']):
        if spec['dtype'] != 'float32' or 'quantization' in spec:
            raise ValueError(f"weight {spec['name']}: only unquantised float32 weights are supported")
        n = int(np.prod(spec['shape'], dtype=np.int64))
        out[spec['name']] = np.frombuffer(raw, '<f4', n, off).reshape(spec['shape']).copy()
        off += 4 * n
    if off != len(raw):
        raise ValueError(f'{model_dir}: model.json describes {off} bytes of weights, the files hold {len(raw)}')
    return out


def _inbound(layer):
    nodes = layer.get('inbound_nodes') or []
    return [t[0] for t in nodes[0]] if nodes else []


class KerasGraph(nn.Module):
    """The ancestors of `taps` in a Keras functional graph; forward returns the taps (NCHW)."""

    def __init__(self, topology, weights, taps):
        super().__init__()
        cfg = topology.get('model_config', topology)['config']
        by_name = {l['name']: l for l in cfg['layers']}
        missing = [t for t in taps if t not in by_name]
        if missing:
            raise ValueError(f'no layer named {missing}')
        keep, stack = set(), list(taps)
        while stack:
            n = stack.pop()
            if n not in keep:
                keep.add(n)
                stack.extend(_inbound(by_name[n]))
        self.taps = list(taps)
        self.order, self.inputs, self.ops = [], {}, nn.ModuleDict()
        for layer in cfg['layers']:  # Keras stores layers in topological order
            name, cls, c = layer['name'], layer['class_name'], layer['config']
            if name not in keep:
                continue
            self.order.append(name)
            self.inputs[name] = _inbound(layer)
            if cls == 'InputLayer':
                continue
            make = {'Conv2D': lambda: KerasConv(c, weights, False), 'DepthwiseConv2D': lambda: KerasConv(c, weights, True),
                    'BatchNormalization': lambda: _batch_norm(c, weights), 'ReLU': lambda: KerasReLU(c),
                    'ZeroPadding2D': lambda: ZeroPad(c), 'Add': Add}.get(cls)
            if make is None:
                raise ValueError(f"layer {name}: Keras class {cls} is not supported")
            self.ops[name] = make()
        self.last = max(self.order.index(t) for t in self.taps)

    def forward(self, x):
        vals = {}
        for name in self.order[:self.last + 1]:
            vals[name] = x if name not in self.ops else self.ops[name](*(vals[i] for i in self.inputs[name]))
        return [vals[t] for t in self.taps]


def load_mobilenet_v2(model_dir, taps=DEFAULT_TAPS):
    """Frozen (eval, requires_grad False) Keras MobileNetV2 from a tfjs layers folder."""
    with open(os.path.join(model_dir, 'model.json')) as f:
        mj = json.load(f)
    with torch.no_grad():
        model = KerasGraph(mj['modelTopology'], read_weights(model_dir, mj['weightsManifest']), taps)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


# ---------------------------------------------------------------- self-check against tfjs
def main():
    import subprocess
    from PIL import Image

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    weights = os.path.join(os.path.abspath(os.environ.get('UFLOW_WEIGHTS_DIR', os.path.join(repo, '..', 'shared', 'weights'))),
                           'mobilenet_v2_035_imagenet')
    datasets = os.path.abspath(os.environ.get('UFLOW_DATASETS_DIR', os.path.join(repo, '..', 'shared', 'datasets')))
    good = os.path.join(datasets, 'metal_plate', 'train', 'good')
    image = sys.argv[1] if len(sys.argv) > 1 else os.path.join(good, sorted(os.listdir(good))[0])
    out = os.path.join(repo, 'bench', 'out')
    os.makedirs(out, exist_ok=True)
    inp, feats = os.path.join(out, 'mobilenet_v2_inputs.safetensors'), os.path.join(out, 'mobilenet_v2_features.safetensors')
    img = np.asarray(Image.open(image).convert('RGB').resize((256, 256), Image.BILINEAR), np.float32) / 255
    write_safetensors(inp, {'image': img[None]})
    subprocess.run(['npx', 'tsx', 'bench/reference/dump_mobilenet_features.ts', feats, inp], cwd=repo, check=True)
    ref = read_safetensors(feats)[0]

    model = load_mobilenet_v2(weights)
    ok = True
    for name in [k for k in ref if '/' not in k]:
        x = torch.from_numpy(ref[name] * 2 - 1).permute(0, 3, 1, 2).contiguous()  # [0,1] NHWC -> [-1,1] NCHW
        with torch.no_grad():
            outs = model(x)
        print(f'{name} {list(x.shape)}' + (f' ({image})' if name == 'image' else ''))
        for tap, y in zip(model.taps, outs):
            r = torch.from_numpy(ref[f'{name}/{tap}'].copy()).permute(0, 3, 1, 2)
            if r.shape != y.shape:
                print(f'  {tap}: shape {list(y.shape)} != tfjs {list(r.shape)}')
                ok = False
                continue
            err, scale = (y - r).abs(), r.abs().max().item()
            rel = err.max().item() / scale
            ok &= rel < 1e-3
            print(f'  {tap:13s} {list(y.shape)}: max|ref| {scale:8.4f}  max abs err {err.max().item():.3e}  '
                  f'mean abs err {err.mean().item():.3e}  max abs err / max|ref| {rel:.3e}')
    print('OK: PyTorch matches tfjs (max abs err < 1e-3 of each tap\'s max magnitude)' if ok else 'FAILED')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
