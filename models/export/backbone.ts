/**
 * Backbones as ONNX: each emitter mirrors one extractor's `extract` (models/backbones/) on an NCHW
 * image in [0, 1] and returns the NCHW feature maps, finest first. A backbone without an emitter
 * is refused with ExportUnsupportedError before anything is written.
 */
import { BuiltinFilters, BUILTIN_FILTERS, COLOUR_GAIN, FILTER_GAIN, GRAY_WEIGHTS, K, filterBank } from '../backbones/builtin.js';
import type { FeatureExtractor } from '../backbones/types.js';
import { TfjsLayersExtractor } from '../backbones/tfjs-layers.js';
import { ResnetExtractor } from '../backbones/resnet.js';
import { ChannelSelectExtractor } from '../backbones/channel-select.js';
import { emitResnet, RESNET_PREPROCESSING } from './resnet.js';
import type { GraphBuilder } from './graph.js';
import { ExportUnsupportedError } from './errors.js';
import { checkKerasLayers, describePreprocessing, emitKerasBackbone } from './keras-layers.js';
import { avgPool, concatChannels, conv, mulScalar, reflectPad, subScalar } from './layers.js';

export { ExportUnsupportedError } from './errors.js';

/** Backbone names (as in a run's config) the exporter translates. */
export const SUPPORTED_BACKBONES = [BUILTIN_FILTERS, 'tfjs:<dir>', 'mobilenet_v2', 'resnet18', 'wide_resnet50_2', 'resnet50'] as const;

/** Whether a configured backbone name has an emitter. */
export function backboneSupported(name: string): boolean {
  return name === BUILTIN_FILTERS || name.startsWith('tfjs:') || name === 'mobilenet_v2' || name === 'resnet18' || name === 'wide_resnet50_2' || name === 'resnet50';
}

export interface BackboneEmitter {
  /** Emits the backbone on `image` (NCHW, RGB in [0, 1]); returns one NCHW map per level, finest first. */
  emit(g: GraphBuilder, image: string): string[];
  /** What the model expects of its input besides [0, 1] RGB (metadata). */
  preprocessing: string;
}

/** builtin:filters (models/backbones/builtin.ts). */
function builtinEmitter(ex: BuiltinFilters): BackboneEmitter {
  return {
    preprocessing: 'none (the filter bank takes RGB in [0, 1])',
    emit(g, image) {
      const n = 13;
      const bank = filterBank(); // HWIO [K, K, 1, n]
      const oihw = new Float32Array(bank.length);
      for (let j = 0; j < n; j++) for (let i = 0; i < K * K; i++) oihw[j * K * K + i] = bank[i * n + j]!;
      const gray = Float32Array.from(GRAY_WEIGHTS);
      return ex.scaleFactors.map((s, level) => {
        const p = `backbone.level${level}`;
        const half = s / 2;
        const small = avgPool(g, image, half, half, `${p}.box`);
        const colour = mulScalar(g, subScalar(g, avgPool(g, small, 2, 2, `${p}.colour_pool`), 0.5, `${p}.colour_centred`), COLOUR_GAIN, `${p}.colour`);
        const grey = conv(g, small, { data: gray, dims: [1, 3, 1, 1] }, undefined, `${p}.gray`);
        const padded = reflectPad(g, grey, (K - 1) / 2, `${p}.reflect`);
        const resp = g.op('Abs', [conv(g, padded, { data: oihw, dims: [n, 1, K, K] }, undefined, `${p}.bank`)], {}, `${p}.abs`);
        const energy = mulScalar(g, avgPool(g, resp, 2, 2, `${p}.energy_pool`), FILTER_GAIN, `${p}.energy`);
        return concatChannels(g, [colour, energy], `${p}.features`);
      });
    },
  };
}

/** The emitter of an extractor, or an ExportUnsupportedError naming it. */
export function backboneEmitter(ex: FeatureExtractor): BackboneEmitter {
  if (ex instanceof ChannelSelectExtractor) {
    // The channel reduction after the taps: a Gather on the channel axis per level, with the run's indices.
    const inner = backboneEmitter(ex.inner);
    return {
      preprocessing: `${inner.preprocessing}; after the backbone, a fixed ${ex.method} channel subset (seed ${ex.seed}) keeps ${ex.channels.join('/')} of its ${ex.inner.channels.join('/')} channels`,
      emit: (g, image) => inner.emit(g, image).map((v, l) => g.op('Gather', [v, g.int64(ex.indices[l]!, `backbone.level${l}.kept_channels`)], { axis: 1 }, `backbone.level${l}.reduced`)),
    };
  }
  if (ex instanceof BuiltinFilters && ex.name === BUILTIN_FILTERS) return builtinEmitter(ex);
  if (ex instanceof TfjsLayersExtractor) {
    checkKerasLayers(ex);
    return { preprocessing: describePreprocessing(ex), emit: (g, image) => emitKerasBackbone(g, ex, image) };
  }
  if (ex instanceof ResnetExtractor) return { preprocessing: RESNET_PREPROCESSING, emit: (g, image) => emitResnet(g, ex, image) };
  throw new ExportUnsupportedError(`ONNX export does not support the backbone '${ex.name}' yet (supported: ${SUPPORTED_BACKBONES.join(', ')}).`);
}
