/**
 * torchvision/timm ResNets (models/backbones/resnet.ts) as ONNX: ImageNet normalisation, the stem
 * (7×7/2 conv with its BatchNorm folded, ReLU, 3×3/2 max-pool padded 1) and the stages up to the
 * last tapped one, from the extractor's own folded convolutions (symmetric padding, as PyTorch).
 */
import { IMAGENET_MEAN, IMAGENET_STD } from '../ops/image-norm.js';
import type { FoldedConv, ResnetBlock, ResnetExtractor } from '../backbones/resnet.js';
import type { GraphBuilder } from './graph.js';
import { conv, hwioToOihwData, readData } from './layers.js';

function emitConv(g: GraphBuilder, x: string, c: FoldedConv, relu: boolean, name: string): string {
  const y = conv(g, x, hwioToOihwData(c.filter), readData(c.bias), name, { strides: c.stride, pads: [c.pad, c.pad, c.pad, c.pad] });
  return relu ? g.op('Relu', [y], {}, `${name}.relu`) : y;
}

function emitBlock(g: GraphBuilder, x: string, blk: ResnetBlock, name: string): string {
  let y = emitConv(g, x, blk.conv1, true, `${name}.conv1`);
  if (blk.conv3) {
    y = emitConv(g, y, blk.conv2, true, `${name}.conv2`);
    y = emitConv(g, y, blk.conv3, false, `${name}.conv3`);
  } else {
    y = emitConv(g, y, blk.conv2, false, `${name}.conv2`);
  }
  const shortcut = blk.downsample ? emitConv(g, x, blk.downsample, false, `${name}.downsample`) : x;
  return g.op('Relu', [g.op('Add', [y, shortcut], {}, `${name}.add`)], {}, `${name}.out`);
}

export const RESNET_PREPROCESSING = `ImageNet: (x − [${IMAGENET_MEAN.join(', ')}]) / [${IMAGENET_STD.join(', ')}]`;

/** Emits the ResNet on `image` (NCHW, RGB in [0, 1]); returns the tapped stages' outputs, finest first. */
export function emitResnet(g: GraphBuilder, ex: ResnetExtractor, image: string): string[] {
  const mean = g.weight('backbone.imagenet_mean', Float32Array.from(IMAGENET_MEAN), [1, 3, 1, 1]);
  const std = g.weight('backbone.imagenet_std', Float32Array.from(IMAGENET_STD), [1, 3, 1, 1]);
  const x = g.op('Div', [g.op('Sub', [image, mean], {}, 'backbone.centred'), std], {}, 'backbone.normalised');
  let y = g.op('MaxPool', [emitConv(g, x, ex.stem, true, 'backbone.conv1')], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 'backbone.maxpool');
  const outs: string[] = [];
  const last = ex.layers[ex.layers.length - 1]!;
  for (let s = 1; s <= last; s++) {
    ex.stages[s - 1]!.forEach((blk, b) => {
      y = emitBlock(g, y, blk, `backbone.layer${s}.${b}`);
    });
    if (ex.layers.includes(s)) outs.push(y);
  }
  return outs;
}
