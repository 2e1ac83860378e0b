/**
 * The predict job: a run (or a released checkpoint) loaded once and image after image predicted
 * (the daemon's hover and `uflow/predict`), and the CLI's batch `uflow predict`.
 */
import type { InferenceInfo, NfaVariant, Prediction, RunInfo } from './protocol.js';
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { atomicWriteFile } from '../models/io/atomic.js';
import type { TensorMap } from '../models/io/safetensors.js';
import type { FeatureExtractor } from '../models/backbones/index.js';
import { mapRangeOf, modelFromConfig, readModelCheckpoint, type AnomalyModel } from '../models/model-factory.js';
import { createMsCaitExtractor } from '../models/backbones/cait.js';
import { configFromExtractor } from '../models/uflow-model.js';
import { mapsOfLatents, negLogNfaOf } from '../models/train/evaluate.js';
import type { OrtModelSession } from '../models/export/ort-session.js';
import { inferenceFor, type InferenceEngine } from './onnx-engine.js';
import type { NullFit } from '../models/scores/nfa-calibrated.js';
import { regionsOf } from '../models/train/threshold-report.js';
import { decodeImage, loadImageForModel, resizeBilinearFloat, type RawImage } from '../models/data/images.js';
import { drawContour, encodePng, heatmapPng, overlayHeatmap, pngDataUri } from '../models/data/render.js';
import { defaultConfig } from './config.js';
import { PipelineError } from './runs.js';
import { asPipelineError, ensureEngine, splitsOf, pickRun, evaluationDataset } from './job-common.js';
import { buildExtractor, targetSizeOf, calibrationFor, predictorCheckpoint, loadCheckpointChecked, nfaRange } from './run-model.js';
import { sizeForConfig, toHW } from '../models/size.js';

/** Flow steps of a U-Flow state dict with `levels` scales: stage j, step k is module j·(steps+3)+k, so the last block is (levels−1)·(steps+3)+steps−1. */
function flowStepsOf(state: TensorMap, levels: number, file: string): number {
  let last = -1;
  for (const k of state.keys()) {
    const m = /(?:^|\.)flow\.module_list\.(\d+)\.global_scale$/.exec(k);
    if (m) last = Math.max(last, Number(m[1]));
  }
  const steps = (last + 1 - 3 * (levels - 1)) / levels;
  if (last < 0 || !Number.isInteger(steps) || steps < 1) throw new PipelineError(`${file}: its flow (flow.module_list.*) does not fit a U-Flow with ${levels} scales`, 'JobFailed');
  return steps;
}

export interface PredictorOptions {
  trainDir: string;
  /** 'tree': the paper's NFA even when the run is calibrated; default: the run's calibration. */
  nfa?: 'calibrated' | 'tree';
  /** Default: the newest finished run (of `category` when given). */
  runId?: string;
  category?: string;
  backend?: string;
  /** Inference engine (default: onnx where onnxruntime-node loads and the model exports, else tfjs). */
  engine?: InferenceEngine;
  /** onnxruntime execution providers (default: UFLOW_ORT_PROVIDERS, else cpu). */
  providers?: string[];
  /** One-line notices (a provider or engine fallback). */
  warn?: (line: string) => void;
}

export interface PredictOptions {
  /** Include the raw maps (for values under the cursor). */
  includeRaw?: boolean;
}

/** Loads a run once (model kept in memory) and predicts image after image. */
export class Predictor {
  private disposed = false;

  private constructor(
    readonly run: RunInfo,
    /** The tfjs model (absent when onnxruntime runs it). */
    private readonly tfjs: { extractor: FeatureExtractor; model: AnomalyModel } | undefined,
    /** Bytes of the tensors (tfjs) or of the ONNX model it holds. */
    readonly bytes: number,
    /** The checkpoint file used. */
    readonly checkpoint: string,
    /** The null fitted on the run's held-out images (absent: the paper's tree NFA). */
    readonly calibration: NullFit | undefined,
    /** Which engine runs the model, and why. */
    readonly inference: InferenceInfo,
    private readonly session?: OrtModelSession,
  ) {}

  /** The detection in use. */
  get nfaVariant(): NfaVariant {
    return this.calibration ? 'calibrated' : 'tree';
  }

  /**
   * Opens the run's model: best-pixel_auroc.safetensors when training validated, else the last
   * checkpoint.
   */
  static async open(opts: PredictorOptions): Promise<Predictor> {
    const trainDir = resolve(opts.trainDir);
    const run = pickRun(trainDir, opts.runId, opts.category);
    const file = predictorCheckpoint(run);
    if (!existsSync(file)) throw new PipelineError(`run ${run.runId} has no checkpoint yet (${file}): it has not completed an epoch`, 'NotFound');
    await ensureEngine(opts.backend);
    const before = tf.memory().numBytes;
    const extractor = await buildExtractor(run.config, undefined, () => {});
    let model: AnomalyModel | undefined;
    try {
      model = loadCheckpointChecked(file, extractor).model;
      const bytes = Math.max(0, tf.memory().numBytes - before);
      // Saved with the run (fitted once, at the end of training, or here on first use and saved).
      const cal = opts.nfa === 'tree' ? undefined : await calibrationFor(run, file, model, extractor, trainDir);
      const { session, info } = await inferenceFor(model, { mapSize: targetSizeOf(run.config), engine: opts.engine, providers: opts.providers, warn: opts.warn });
      if (!session) return new Predictor(run, { extractor, model }, bytes, file, cal?.fit, info);
      // onnxruntime holds its own copy of the weights: the tfjs model is not needed any more.
      model.dispose();
      extractor.dispose();
      return new Predictor(run, undefined, session.bytes, file, cal?.fit, info, session);
    } catch (e) {
      model?.dispose();
      extractor.dispose();
      throw e;
    }
  }

  /**
   * Opens a U-Flow checkpoint file that is not one of our runs: a released checkpoint
   * (`models/<metric>/<category>.ckpt`, Lightning, MS-CaiT at 448) or any file in the reference
   * naming that holds the MS-CaiT backbone weights (`feature_extractor.extractor1.` / `extractor2.`)
   * beside the flow. The number of flow steps is read from the flow's module indices.
   */
  static async openFile(file: string, opts: { backend?: string; engine?: InferenceEngine; warn?: (line: string) => void } = {}): Promise<Predictor> {
    const path = resolve(file);
    if (!existsSync(path)) throw new PipelineError(`${path}: no such checkpoint file: check the path`, 'NotFound');
    await ensureEngine(opts.backend);
    const before = tf.memory().numBytes;
    let state: TensorMap;
    try {
      state = readModelCheckpoint(path).state;
    } catch (e) {
      asPipelineError(e, 'JobFailed');
    }
    if (![...state.keys()].some((k) => /extractor1\.patch_embed\./.test(k))) {
      throw new PipelineError(`${path}: holds no MS-CaiT backbone weights (feature_extractor.extractor1/2): for a run of this product use --run RUN_ID instead of --checkpoint`, 'Usage');
    }
    let extractor: FeatureExtractor | undefined;
    let model: AnomalyModel | undefined;
    try {
      extractor = createMsCaitExtractor(state);
      const flowSteps = flowStepsOf(state, extractor.channels.length, path);
      model = modelFromConfig('uflow', configFromExtractor(extractor, flowSteps), extractor);
      model.loadStateDict(state, path);
      const now = new Date().toISOString();
      const category = basename(path).replace(/\.[^.]+$/, '');
      const config = defaultConfig(category, 'uflow');
      config.model = { ...config.model, backbone: 'mcait', input_size: sizeForConfig(extractor.inputSize), flow_steps: flowSteps };
      const run: RunInfo = {
        runId: basename(path),
        dir: dirname(path),
        model: 'uflow',
        category,
        datasetPath: '',
        datasetFingerprint: '',
        config,
        state: 'finished',
        createdAt: now,
        updatedAt: now,
        epochsDone: 0,
        engine: { backend: tf.getBackend(), device: '' },
        versions: {},
        best: {},
      };
      const why = `ONNX export does not support the backbone 'mcait' yet: a released checkpoint runs on tfjs`;
      if (opts.engine === 'onnx') opts.warn?.(`inference on tfjs instead of onnx: ${why}`);
      return new Predictor(run, { extractor, model }, Math.max(0, tf.memory().numBytes - before), path, undefined, { engine: 'tfjs', reason: why });
    } catch (e) {
      model?.dispose();
      extractor?.dispose();
      if (e instanceof PipelineError) throw e;
      throw new PipelineError(`${path}: ${(e as Error).message}`, 'JobFailed');
    }
  }

  async predict(imagePath: string, opts: PredictOptions = {}): Promise<Prediction> {
    if (this.disposed) throw new PipelineError('the predictor was disposed', 'JobFailed');
    const T = targetSizeOf(this.run.config);
    const [Th, Tw] = T;
    const [Sh, Sw] = toHW(this.run.config.model.input_size);
    let original: RawImage;
    let input: Float32Array;
    try {
      original = await decodeImage(imagePath);
      input = (await loadImageForModel(imagePath, [Sh, Sw])).data;
    } catch (e) {
      asPipelineError(e);
    }
    let maps: { anomaly: Float32Array[]; negLogNfa?: Float32Array[] };
    if (this.session) {
      const { latents, anomaly } = await this.session.run(input, 1);
      maps = { anomaly, negLogNfa: [negLogNfaOf(latents, T, this.nfaVariant, { calibration: this.calibration })] };
    } else {
      const { model } = this.tfjs!;
      const z = tf.tidy(() => model.forward(tf.tensor4d(input, [1, Sh, Sw, 3])).z);
      try {
        maps = await mapsOfLatents(z, T, this.nfaVariant, undefined, (zz, s) => model.anomalyMap(zz, s), this.calibration);
      } finally {
        tf.dispose(z);
      }
    }
    const anomaly = maps.anomaly[0]!;
    const nfa = maps.negLogNfa![0]!;
    const { width: w, height: h } = original;
    const nfaFull = w === Tw && h === Th ? nfa : resizeBilinearFloat(nfa, Tw, Th, w, h);
    const det = new Uint8Array(w * h);
    for (let i = 0; i < det.length; i++) det[i] = nfaFull[i]! > 0 ? 1 : 0;
    const thickness = Math.max(1, Math.round(Math.max(w, h) / 256));
    let score = -Infinity;
    for (const v of anomaly) if (v > score) score = v;
    let maxNfa = -Infinity;
    for (const v of nfa) if (v > maxNfa) maxNfa = v;
    return {
      runId: this.run.runId,
      imagePath,
      score,
      maxNegLogNfa: maxNfa,
      width: w,
      height: h,
      anomalyMapPng: pngDataUri(encodePng(overlayHeatmap(original, anomaly, Tw, Th, { range: mapRangeOf(this.run.model), alpha: 0.5 }), w, h, 3)),
      nfaMapPng: pngDataUri(heatmapPng(nfaFull, w, h, { range: nfaRange(nfa) })),
      segmentationPng: pngDataUri(encodePng(drawContour(original, det, { thickness }), w, h, 3)),
      mapSize: Tw,
      mapShape: [Th, Tw],
      regions: regionsOf(nfa, Th, Tw),
      nfaVariant: this.nfaVariant,
      inference: this.inference,
      ...(opts.includeRaw ? { anomalyMap: Array.from(anomaly), negLogNfaMap: Array.from(nfa) } : {}),
    };
  }

  /** Frees the model's tensors. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.tfjs?.model.dispose();
    this.tfjs?.extractor.dispose();
    void this.session?.release().catch(() => undefined);
  }
}

export interface PredictFolderOptions extends PredictorOptions {
  /** A checkpoint file to use instead of a run (a released U-Flow .ckpt): see Predictor.openFile. */
  checkpoint?: string;
  /** Images to predict; empty: the test images of the run's dataset (or `datasetPath`). */
  images: string[];
  datasetPath?: string;
  /** Write `<name>.overlay.png`, `<name>.nfa.png`, `<name>.segmentation.png` here. */
  outDir?: string;
}

export interface PredictFolderResult {
  runId: string;
  outDir?: string;
  /** 'calibrated' or the paper's variant used. */
  nfaVariant: NfaVariant;
  /** Which inference engine ran, and why. */
  inference: InferenceInfo;
  images: Array<{
    imagePath: string;
    score: number;
    maxNegLogNfa: number;
    anomalous: boolean;
    /** One line: 'defect: 2 regions, strongest −log NFA 14.2 at (120, 40, 18×9)' or 'no defect (max −log NFA −1.3)'. */
    verdict: string;
    /** Detected regions in the image's own pixels: bounding box, area and −log NFA. */
    regions: Array<{ box: [number, number, number, number]; area: number; maxNegLogNfa: number }>;
    files?: string[];
  }>;
}

/** A prediction's regions in the image's own pixels (they are found at the map size). */
function regionsInImage(pr: Prediction): PredictFolderResult['images'][number]['regions'] {
  const [mh, mw] = pr.mapShape ?? [pr.mapSize, pr.mapSize];
  const sx = pr.width / mw;
  const sy = pr.height / mh;
  return (pr.regions ?? []).map((r) => ({
    box: [Math.floor(r.box[0] * sx), Math.floor(r.box[1] * sy), Math.max(1, Math.round(r.box[2] * sx)), Math.max(1, Math.round(r.box[3] * sy))],
    area: Math.round(r.area * sx * sy),
    maxNegLogNfa: r.maxNegLogNfa,
  }));
}

/** The one-line verdict of a prediction. */
export function verdictOf(maxNegLogNfa: number, regions: PredictFolderResult['images'][number]['regions']): string {
  if (!regions.length) return `no defect (max −log NFA ${maxNegLogNfa.toFixed(1)} ≤ 0)`;
  const r = regions.reduce((a, b) => (b.maxNegLogNfa > a.maxNegLogNfa ? b : a));
  return `defect: ${regions.length} region${regions.length > 1 ? 's' : ''}, strongest −log NFA ${r.maxNegLogNfa.toFixed(1)} at (${r.box[0]}, ${r.box[1]}) ${r.box[2]}×${r.box[3]} px`;
}

export async function predictFolder(opts: PredictFolderOptions): Promise<PredictFolderResult> {
  if (opts.checkpoint && !opts.images.length && !opts.datasetPath) throw new PipelineError('with --checkpoint, name the images (--image <file>) or a dataset (-data <folder>)', 'Usage');
  const predictor = opts.checkpoint ? await Predictor.openFile(opts.checkpoint, { backend: opts.backend, engine: opts.engine, warn: opts.warn }) : await Predictor.open(opts);
  try {
    let images = opts.images;
    if (!images.length) {
      const dir = evaluationDataset(predictor.run, opts.datasetPath);
      images = splitsOf(dir).test.map((i) => i.path);
      if (!images.length) throw new PipelineError(`${dir}: no test images to predict: pass --image <file>`, 'BadDataset');
    }
    for (const p of images) if (!existsSync(p)) throw new PipelineError(`${p}: no such image file`, 'BadDataset');
    const out: PredictFolderResult = { runId: predictor.run.runId, outDir: opts.outDir, nfaVariant: predictor.nfaVariant, inference: predictor.inference, images: [] };
    if (opts.outDir) mkdirSync(opts.outDir, { recursive: true });
    const used = new Set<string>();
    for (const p of images) {
      const pr = await predictor.predict(p);
      const regions = regionsInImage(pr);
      const r: PredictFolderResult['images'][number] = { imagePath: p, score: pr.score, maxNegLogNfa: pr.maxNegLogNfa, anomalous: pr.maxNegLogNfa > 0, verdict: verdictOf(pr.maxNegLogNfa, regions), regions };
      if (opts.outDir) {
        let stem = basename(p).replace(/\.[^.]+$/, '');
        if (used.has(stem)) stem = `${basename(join(p, '..'))}_${stem}`;
        used.add(stem);
        r.files = [];
        for (const [kind, uri] of [['overlay', pr.anomalyMapPng], ['nfa', pr.nfaMapPng], ['segmentation', pr.segmentationPng]] as const) {
          const f = join(opts.outDir, `${stem}.${kind}.png`);
          atomicWriteFile(f, Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64'));
          r.files.push(f);
        }
      }
      out.images.push(r);
    }
    return out;
  } finally {
    predictor.dispose();
  }
}
