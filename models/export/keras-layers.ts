/**
 * A TensorFlow.js layers backbone (models/backbones/tfjs-layers.ts) as ONNX: its input
 * normalisation, then the pruned model's layers in their topological order, each translated from
 * its Keras config and weights (NHWC → NCHW), up to the tapped layers. Layers outside the set
 * below are refused with ExportUnsupportedError naming them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CAFFE_BGR_MEAN, type TfjsLayersExtractor } from '../backbones/tfjs-layers.js';
import type { GraphBuilder } from './graph.js';
import { ExportUnsupportedError } from './errors.js';
import { addScalar, conv, depthwiseToOihwData, hwioToOihwData, mulScalar, readData, tfSamePads, zeroPad } from './layers.js';

/** What the walk needs of a tfjs-layers Layer (its getConfig() keys are tfjs's camelCase ones). */
interface KerasLayer {
  name: string;
  getClassName(): string;
  getConfig(): Record<string, unknown>;
  weights: Array<{ originalName: string; read(): tf.Tensor }>;
  inboundNodes: Array<{ inboundLayers: KerasLayer[]; inputShapes: unknown }>;
  outputShape: unknown;
}

export const KERAS_LAYERS = ['InputLayer', 'Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'ReLU', 'Activation', 'Add', 'Concatenate', 'ZeroPadding2D', 'MaxPooling2D', 'AveragePooling2D'] as const;
const ACTIVATIONS = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh'] as const;

function weightOf(layer: KerasLayer, suffix: string): tf.Tensor | undefined {
  return layer.weights.find((w) => w.originalName.endsWith(`/${suffix}`))?.read();
}

function pair(v: unknown, what: string, layer: KerasLayer): [number, number] {
  const a = Array.isArray(v) ? v : [v, v];
  if (a.length !== 2 || !a.every((n) => Number.isInteger(n))) throw new ExportUnsupportedError(`ONNX export cannot read the ${what} of the Keras layer '${layer.name}' (${JSON.stringify(v)}).`);
  return [a[0] as number, a[1] as number];
}

/** [H, W] of the layer's (single) input. */
function inputHW(layer: KerasLayer): [number, number] {
  const shapes = layer.inboundNodes[0]!.inputShapes as Array<number | null>[] | Array<number | null>;
  const s = (Array.isArray(shapes[0]) ? shapes[0] : shapes) as Array<number | null>;
  if (s.length !== 4 || typeof s[1] !== 'number' || typeof s[2] !== 'number') {
    throw new ExportUnsupportedError(`ONNX export needs a fixed NHWC input shape at the Keras layer '${layer.name}' (got ${JSON.stringify(s)}).`);
  }
  return [s[1], s[2]];
}

function activation(g: GraphBuilder, x: string, act: unknown, layer: KerasLayer): string {
  const a = String(act ?? 'linear');
  switch (a) {
    case 'linear':
      return x;
    case 'relu':
      return g.op('Relu', [x], {}, `${layer.name}.relu`);
    case 'relu6':
      return g.op('Clip', [x, g.scalar(0), g.scalar(6)], {}, `${layer.name}.relu6`);
    case 'sigmoid':
      return g.op('Sigmoid', [x], {}, `${layer.name}.sigmoid`);
    case 'tanh':
      return g.op('Tanh', [x], {}, `${layer.name}.tanh`);
    default:
      throw new ExportUnsupportedError(`ONNX export does not support the activation '${a}' of the Keras layer '${layer.name}' yet (supported: ${ACTIVATIONS.join(', ')}).`);
  }
}

/** Pads of a Keras 'valid' or 'same' convolution/pooling, [top, left, bottom, right]. */
function kerasPads(layer: KerasLayer, k: [number, number], s: [number, number], d: [number, number]): [number, number, number, number] {
  const padding = String(layer.getConfig().padding ?? 'valid');
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding !== 'same') throw new ExportUnsupportedError(`ONNX export does not support the padding '${padding}' of the Keras layer '${layer.name}' yet.`);
  const [h, w] = inputHW(layer);
  const ph = tfSamePads(h, k[0], s[0], d[0]);
  const pw = tfSamePads(w, k[1], s[1], d[1]);
  return [ph[0], pw[1], ph[2], pw[3]];
}

function checkChannelsLast(layer: KerasLayer): void {
  const df = layer.getConfig().dataFormat;
  if (df !== undefined && df !== null && df !== 'channelsLast') throw new ExportUnsupportedError(`ONNX export supports channels_last Keras layers only ('${layer.name}' is ${String(df)}).`);
}

function emitLayer(g: GraphBuilder, layer: KerasLayer, inputs: string[]): string {
  const cls = layer.getClassName();
  const cfg = layer.getConfig();
  const name = `backbone.${layer.name}`;
  const x = inputs[0]!;
  switch (cls) {
    case 'Conv2D':
    case 'DepthwiseConv2D': {
      checkChannelsLast(layer);
      const k = pair(cfg.kernelSize, 'kernel size', layer);
      const s = pair(cfg.strides ?? 1, 'strides', layer);
      const d = pair(cfg.dilationRate ?? 1, 'dilation', layer);
      if (s[0] !== s[1] || d[0] !== d[1]) throw new ExportUnsupportedError(`ONNX export supports square strides and dilations only (Keras layer '${layer.name}').`);
      const depthwise = cls === 'DepthwiseConv2D';
      const kernel = weightOf(layer, depthwise ? 'depthwise_kernel' : 'kernel');
      if (!kernel) throw new Error(`ONNX export: the Keras layer '${layer.name}' has no kernel`);
      const filter = depthwise ? depthwiseToOihwData(kernel) : hwioToOihwData(kernel);
      const bias = cfg.useBias === false ? undefined : weightOf(layer, 'bias');
      const y = conv(g, x, filter, bias ? readData(bias) : undefined, name, {
        strides: s[0],
        dilation: d[0],
        pads: kerasPads(layer, k, s, d),
        group: depthwise ? kernel.shape[2] : 1,
      });
      return activation(g, y, cfg.activation, layer);
    }
    case 'BatchNormalization': {
      const axis = cfg.axis;
      if (!(axis === -1 || axis === 3 || (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3)))) {
        throw new ExportUnsupportedError(`ONNX export supports BatchNormalization over the channels only (Keras layer '${layer.name}' has axis ${JSON.stringify(axis)}).`);
      }
      const mean = weightOf(layer, 'moving_mean')!;
      const variance = weightOf(layer, 'moving_variance')!;
      const c = mean.shape[0]!;
      const gamma = weightOf(layer, 'gamma');
      const beta = weightOf(layer, 'beta');
      const w = (t: tf.Tensor | undefined, fill: number, n: string) => g.weight(`${name}.${n}`, t ? readData(t) : new Float32Array(c).fill(fill), [c]);
      return g.op(
        'BatchNormalization',
        [x, w(gamma, 1, 'gamma'), w(beta, 0, 'beta'), w(mean, 0, 'moving_mean'), w(variance, 1, 'moving_variance')],
        { epsilon: { float: Number(cfg.epsilon ?? 1e-3) } },
        name,
      );
    }
    case 'ReLU': {
      const max = cfg.maxValue;
      if (max === null || max === undefined) return g.op('Relu', [x], {}, name);
      return g.op('Clip', [x, g.scalar(0), g.scalar(Number(max))], {}, name);
    }
    case 'Activation':
      return activation(g, x, cfg.activation, layer);
    case 'Add':
      return inputs.length === 2 ? g.op('Add', inputs, {}, name) : g.op('Sum', inputs, {}, name);
    case 'Concatenate': {
      const axis = Number(cfg.axis ?? -1);
      if (axis !== -1 && axis !== 3) throw new ExportUnsupportedError(`ONNX export supports Concatenate on the channels only (Keras layer '${layer.name}').`);
      return g.op('Concat', inputs, { axis: 1 }, name);
    }
    case 'ZeroPadding2D': {
      checkChannelsLast(layer);
      const p = cfg.padding;
      const [[top, bottom], [left, right]] = Array.isArray(p) && Array.isArray(p[0]) ? (p as [[number, number], [number, number]]) : (() => {
        const [a, b] = pair(p, 'padding', layer);
        return [[a, a], [b, b]] as [[number, number], [number, number]];
      })();
      return zeroPad(g, x, [top, left, bottom, right], name);
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      checkChannelsLast(layer);
      const k = pair(cfg.poolSize, 'pool size', layer);
      const s = pair(cfg.strides ?? cfg.poolSize, 'strides', layer);
      const pads = kerasPads(layer, k, s, [1, 1]);
      const max = cls === 'MaxPooling2D';
      // TensorFlow's 'same' average pooling divides by the window's valid pixels only.
      return g.op(max ? 'MaxPool' : 'AveragePool', [x], { kernel_shape: k, strides: s, pads, ...(max ? {} : { count_include_pad: 0 }) }, name);
    }
    default:
      throw new ExportUnsupportedError(`ONNX export does not support the Keras layer '${layer.name}' (${cls}) of this tfjs backbone yet (supported: ${KERAS_LAYERS.join(', ')}).`);
  }
}

/** Checks every layer the taps need can be translated (without emitting anything). */
export function checkKerasLayers(ex: TfjsLayersExtractor): void {
  for (const l of ex.model.layers as unknown as KerasLayer[]) {
    if (!(KERAS_LAYERS as readonly string[]).includes(l.getClassName())) {
      throw new ExportUnsupportedError(`ONNX export does not support the Keras layer '${l.name}' (${l.getClassName()}) of this tfjs backbone yet (supported: ${KERAS_LAYERS.join(', ')}).`);
    }
    if (l.inboundNodes.length !== 1) throw new ExportUnsupportedError(`ONNX export does not support Keras layers applied more than once ('${l.name}') yet.`);
  }
}

/** The input normalisation (mapRange or Keras caffe) on an NCHW image in [0, 1]. */
function emitPreprocessing(g: GraphBuilder, ex: TfjsLayersExtractor, image: string): string {
  if (ex.preprocessing === 'caffe') {
    const scaled = mulScalar(g, image, 255, 'backbone.caffe.scaled');
    const bgr = g.op('Gather', [scaled, g.int64([2, 1, 0], 'bgr')], { axis: 1 }, 'backbone.caffe.bgr');
    return g.op('Sub', [bgr, g.weight('backbone.caffe.mean', Float32Array.from(CAFFE_BGR_MEAN), [1, 3, 1, 1])], {}, 'backbone.caffe');
  }
  const [lo, hi] = ex.inputRange;
  if (lo === 0 && hi === 1) return image;
  return addScalar(g, mulScalar(g, image, hi - lo, 'backbone.range.scaled'), lo, 'backbone.range');
}

export function describePreprocessing(ex: TfjsLayersExtractor): string {
  if (ex.preprocessing === 'caffe') return `Keras "caffe": ×255, RGB→BGR, minus [${CAFFE_BGR_MEAN.join(', ')}]`;
  return `mapped linearly onto [${ex.inputRange.join(', ')}]`;
}

/** Emits the backbone; returns the tapped layers' outputs (NCHW), finest first. */
export function emitKerasBackbone(g: GraphBuilder, ex: TfjsLayersExtractor, image: string): string[] {
  checkKerasLayers(ex);
  const values = new Map<string, string>();
  const input = emitPreprocessing(g, ex, image);
  for (const layer of ex.model.layers as unknown as KerasLayer[]) {
    if (layer.getClassName() === 'InputLayer') {
      values.set(layer.name, input);
      continue;
    }
    const ins = layer.inboundNodes[0]!.inboundLayers.map((l) => {
      const v = values.get(l.name);
      if (!v) throw new Error(`ONNX export: the Keras layer '${layer.name}' reads '${l.name}', which comes later in the model's layer order`);
      return v;
    });
    values.set(layer.name, tf.tidy(() => emitLayer(g, layer, ins)));
  }
  return ex.layers.map((n) => {
    const v = values.get(n);
    if (!v) throw new Error(`ONNX export: the tapped layer '${n}' is not in the model`);
    return v;
  });
}
