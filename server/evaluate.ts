/**
 * The evaluate job: a run's metrics on its test split (each from the checkpoint selected on it),
 * the threshold's evidence, per-image PNG maps; writes evaluation.json.
 */
import type { Evaluation, FalseAlarms, InferenceInfo, NfaVariant, ThresholdEvaluation, ImageResult, RunConfig } from './protocol.js';
import * as tf from '@tensorflow/tfjs-core';
import { basename, join, resolve } from 'node:path';
import { atomicWriteFile, atomicWriteJson } from '../models/io/atomic.js';
import type { FeatureExtractor } from '../models/backbones/index.js';
import { mapRangeOf, type AnomalyModel } from '../models/model-factory.js';
import { loadFeatures } from '../models/train/feature-cache.js';
import { computeMaps, computeMetricSet, type MapSet, type NfaMode } from '../models/train/evaluate.js';
import { falseAlarmStats } from '../models/metrics/false-alarms.js';
import { regionsOf, thresholdSummary } from '../models/train/threshold-report.js';
import { summaryOf, type CalibrationEntry } from './calibration.js';
import { datasetForJob, type DatasetReportHooks } from './dataset-report.js';
import type { SplitItem } from '../models/data/dataset.js';
import { loadImageForModel, type RawImage } from '../models/data/images.js';
import { drawContour, encodePng, heatmapPng, overlayHeatmap } from '../models/data/render.js';
import { METRIC_NAMES, PipelineError, RUN_FILES, type SelectionMetric } from './runs.js';
import { asPipelineError, ensureEngine, pickRun, evaluationDataset } from './job-common.js';
import { extractorId, buildExtractor, tensorImageLoader, targetSizeOf, loadValidationData, loadTestMasks, holdoutItems, calibrationFor, checkpointsFor, loadCheckpointChecked, nfaRange, type ValidationData } from './run-model.js';
import { computeMapsOrt, type OrtModelSession } from '../models/export/ort-session.js';
import { inferenceFor, type InferenceEngine } from './onnx-engine.js';
import { toHW, type HW } from '../models/size.js';

export interface EvaluateOptions extends DatasetReportHooks {
  /** Evaluate without the test images whose mask is missing, mis-sized or unreadable (listed in the report) instead of refusing. */
  allowMaskProblems?: boolean;
  trainDir: string;
  /** Default: the newest finished run of `category`. */
  runId?: string;
  category?: string;
  /** Default: the run's dataset. */
  datasetPath?: string;
  /** Exact (continuous-relaxation) tail probabilities in the NFA; slower. The same as nfa 'block-hp'. */
  highPrecision?: boolean;
  /**
   * The detection: 'calibrated' (default: the null fitted on the run's held-out normal images; the
   * paper's tree when the run has none) or the paper's computation ('tree', 'block', 'block-hp').
   */
  nfa?: NfaVariant;
  /**
   * 'best' (default, as the official evaluate.py): each metric from the checkpoint selected on it
   * during training (best-<metric>.safetensors), falling back to the last; 'last': checkpoint.safetensors.
   */
  checkpoint?: 'best' | 'last';
  /** Write per-image PNG maps under maps/ (default true). */
  writeMaps?: boolean;
  backend?: string;
  /** Inference engine (default: onnx where onnxruntime-node loads and the model exports, else tfjs). */
  engine?: InferenceEngine;
  /** onnxruntime execution providers (default: UFLOW_ORT_PROVIDERS, else cpu). */
  providers?: string[];
  /** One-line notices (a provider or engine fallback). */
  warn?: (line: string) => void;
  signal?: AbortSignal;
  onProgress?(done: number, total: number, message: string): void;
}

/** Evaluates a run on its test split; writes evaluation.json (atomically) and returns it. */
export async function evaluate(opts: EvaluateOptions): Promise<Evaluation> {
  const trainDir = resolve(opts.trainDir);
  const run = pickRun(trainDir, opts.runId, opts.category);
  const categoryDir = evaluationDataset(run, opts.datasetPath);
  const items = (await datasetForJob({ purpose: 'evaluate', categoryDir, inputSize: run.config.model.input_size, runDir: run.dir, allowMaskProblems: opts.allowMaskProblems, onDatasetReport: opts.onDatasetReport })).test;
  if (!items.length) throw new PipelineError(`${categoryDir}: no test images (test/good and test/<defect> with ground_truth masks): nothing to evaluate`, 'BadDataset');
  if (!items.some((i) => i.label === 0) || !items.some((i) => i.label === 1)) {
    throw new PipelineError(`${categoryDir}: the test split needs both good images (test/good) and defective ones (test/<defect>) for AUROC`, 'BadDataset');
  }
  const ckpts = checkpointsFor(run, opts.checkpoint ?? 'best');
  const engine = await ensureEngine(opts.backend);
  void engine;
  const before = tf.memory().numTensors;
  const progress = (msg: string) => (done: number, total: number) => opts.onProgress?.(done, total, msg);
  const extractor = await buildExtractor(run.config, opts.signal, () => {});
  const T = targetSizeOf(run.config);
  let nfaMode: NfaVariant = opts.highPrecision ? 'block-hp' : (opts.nfa ?? 'calibrated');
  let calibration: CalibrationEntry | undefined;
  let holdoutAlarms: FalseAlarms | undefined;
  const holdout = holdoutItems(run);
  try {
    // tfjs runs the flow on the cached backbone features (loaded on first need); onnxruntime runs
    // the whole exported model on the images.
    let data: ValidationData | undefined;
    const [Sh, Sw] = toHW(run.config.model.input_size);
    const per = Sh * Sw * 3;
    const loadBatch = (list: SplitItem[]) => async (start: number, n: number) => {
      const x = new Float32Array(n * per);
      for (let b = 0; b < n; b++) x.set((await loadImageForModel(list[start + b]!.path, [Sh, Sw])).data, b * per);
      return x;
    };
    const warned = new Set<string>();
    const warn = (line: string) => void (warned.has(line) || (warned.add(line), opts.warn?.(line)));
    let inference: InferenceInfo | undefined;
    try {
      // One pass per distinct checkpoint; the NFA only where mIoU is taken from.
      const byFile = new Map<string, SelectionMetric[]>();
      for (const m of METRIC_NAMES) byFile.set(ckpts[m], [...(byFile.get(ckpts[m]) ?? []), m]);
      const mapsOf = new Map<SelectionMetric, MapSet>();
      for (const [file, metrics] of byFile) {
        const { model } = loadCheckpointChecked(file, extractor);
        let session: OrtModelSession | undefined;
        try {
          const withNfa = metrics.includes('miou');
          if (withNfa && nfaMode === 'calibrated') {
            calibration = await calibrationFor(run, file, model, extractor, trainDir, opts.signal);
            if (!calibration) nfaMode = 'tree';
            else holdoutAlarms = calibration.holdoutFalseAlarms;
          }
          const inf = await inferenceFor(model, { mapSize: T, engine: opts.engine, providers: opts.providers, warn });
          session = inf.session;
          inference ??= inf.info;
          if (withNfa && nfaMode !== 'calibrated' && holdout.length) {
            holdoutAlarms = session
              ? officialHoldoutAlarmsOf(await computeMapsOrt(session, holdout.length, loadBatch(holdout), { nfa: nfaMode as NfaMode, signal: opts.signal }), T)
              : await officialHoldoutAlarms(model, holdout, nfaMode, trainDir, extractor, run.config, opts.signal);
          }
          const mapOpts = {
            batchSize: run.config.trainer.batch_val,
            nfa: (withNfa ? nfaMode : 'none') as NfaMode,
            calibration: calibration?.fit,
            signal: opts.signal,
            onProgress: progress(`maps (${basename(file)}, ${inf.info.engine})`),
          };
          const maps = session
            ? await computeMapsOrt(session, items.length, loadBatch(items), mapOpts)
            : await computeMaps(model, (data ??= await loadValidationData(items, trainDir, extractor, run.config, opts.signal, (d, t) => progress('features')(d, t))).features.levels, { ...mapOpts, targetSize: T });
          for (const m of metrics) mapsOf.set(m, maps);
        } finally {
          model.dispose();
          await session?.release();
        }
      }
      const masks = data?.masks ?? (await loadTestMasks(items, run.config.model.input_size, T));
      const aurocMaps = mapsOf.get('pixel_auroc')!;
      const nfaMaps = mapsOf.get('miou')!;
      const result = computeMetricSet(items, masks, { image: mapsOf.get('image_auroc')!, pixel: aurocMaps, pro: mapsOf.get('aupro')!, nfa: nfaMaps }, { curves: true, perDefect: true });
      opts.onProgress?.(0, 1, 'threshold evidence');
      const ts = thresholdSummary(items, masks, nfaMaps.negLogNfa!, T, 0);
      const goodIdx = items.map((it, i) => (it.label === 0 ? i : -1)).filter((i) => i >= 0);
      const worstPath = (w: FalseAlarms['worst'], paths: string[]) => (w ? { ...w, path: paths[w.index] } : null);
      const threshold: ThresholdEvaluation = {
        variant: nfaMode,
        calibration:
          nfaMode === 'calibrated'
            ? summaryOf(calibration, holdout.length)
            : { variant: nfaMode, description: calibrationSummaryOfficial(nfaMode, opts.nfa, holdout.length), images: 0 },
        automatic: 0,
        falseAlarms: {
          testGood: { ...ts.falseAlarms.testGood, worst: worstPath(ts.falseAlarms.testGood.worst, goodIdx.map((i) => items[i]!.path)) },
          ...(holdoutAlarms ? { holdout: { ...holdoutAlarms, worst: worstPath(holdoutAlarms.worst, holdout.map((i) => i.path)) } } : {}),
        },
        miou: ts.miou,
        perDefect: ts.perDefect,
        curve: ts.curve,
      };
      const images: ImageResult[] = [];
      const writeMaps = opts.writeMaps !== false;
      for (let i = 0; i < items.length; i++) {
        if (opts.signal?.aborted) throw new DOMException('cancelled', 'AbortError');
        const it = items[i]!;
        const r: ImageResult = {
          path: it.path,
          defect: it.defect,
          label: it.label,
          score: mapsOf.get('image_auroc')!.scores[i]!,
          maxNegLogNfa: nfaMaps.maxNegLogNfa[i]!,
          detectedPixels: result.perImage[i]!.detectedPixels,
          iou: result.perImage[i]!.iou,
          ...(it.maskPath ? { maskPath: it.maskPath } : {}),
          regions: regionsOf(nfaMaps.negLogNfa![i]!, T[0], T[1]),
        };
        if (writeMaps) r.maps = await writeImageMaps(run.dir, it, aurocMaps.anomaly[i]!, nfaMaps.negLogNfa![i]!, T, mapRangeOf(run.model));
        images.push(r);
        if (writeMaps && (i % 8 === 7 || i === items.length - 1)) opts.onProgress?.(i + 1, items.length, 'PNG maps');
      }
      const ev: Evaluation & { checkpoints: Record<string, string>; nfa: string } = {
        runId: run.runId,
        category: run.category,
        model: run.model,
        datasetPath: categoryDir,
        highPrecision: Boolean(opts.highPrecision),
        evaluatedAt: new Date().toISOString(),
        targetSize: Math.max(...T),
        ...(T[0] !== T[1] ? { targetShape: T } : {}),
        overall: result.overall,
        perDefect: result.perDefect,
        curves: result.curves,
        images,
        checkpoints: Object.fromEntries(METRIC_NAMES.map((m) => [m, basename(ckpts[m])])),
        nfa: nfaMode,
        threshold,
        inference,
      };
      atomicWriteJson(join(run.dir, RUN_FILES.evaluation), ev);
      return ev;
    } finally {
      data?.features.dispose();
    }
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw new PipelineError('evaluation cancelled', 'Cancelled');
    throw asPipelineError(e, 'JobFailed');
  } finally {
    extractor.dispose();
    const leaked = tf.memory().numTensors - before;
    if (leaked > 0) process.emitWarning(`uflow evaluate: ${leaked} tensors left behind`);
  }
}

/** Why an official variant is in use, for the record. */
function calibrationSummaryOfficial(used: NfaVariant, asked: NfaVariant | undefined, holdout: number): string {
  if (asked === undefined || asked === 'calibrated') {
    return holdout ? 'calibration asked for but the held-out images could not be read: the paper’s tree NFA under N(0, I)' : 'no held-out normal images in this run: the paper’s tree NFA under N(0, I), not calibrated';
  }
  return `the paper’s ${used} NFA under N(0, I), as asked (--nfa ${used}); not calibrated`;
}

/** False alarms of an official variant on the held-out normal images (measured directly: nothing was fitted on them). */
async function officialHoldoutAlarms(model: AnomalyModel, items: SplitItem[], nfa: NfaMode, trainDir: string, extractor: FeatureExtractor, cfg: RunConfig, signal?: AbortSignal): Promise<FalseAlarms> {
  const feats = await loadFeatures(items.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(cfg), loadImage: tensorImageLoader, signal });
  try {
    const [Th, Tw] = targetSizeOf(cfg);
    return officialHoldoutAlarmsOf(await computeMaps(model, feats.levels, { targetSize: [Th, Tw], nfa, signal }), [Th, Tw]);
  } finally {
    feats.dispose();
  }
}

/** The false alarms on the held-out images of maps at the evaluation size [Th, Tw] (targetSizeOf). */
function officialHoldoutAlarmsOf(maps: MapSet, [Th, Tw]: HW): FalseAlarms {
  return { ...falseAlarmStats(maps.negLogNfa!, Th, Tw, 0), folds: 0 };
}

/** Image bytes at Th×Tw (RGB), as the model saw it. */
async function imageAt(path: string, T: HW): Promise<RawImage> {
  const [Th, Tw] = T;
  const img = await loadImageForModel(path, T);
  const data = new Uint8Array(Th * Tw * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(img.data[i]! * 255);
  return { data, width: Tw, height: Th, channels: 3 };
}

/** Writes the four PNGs of one test image under maps/ and returns their paths relative to the run. */
async function writeImageMaps(dir: string, it: SplitItem, anomaly: Float32Array, nfa: Float32Array, T: HW, range: [number, number] = [0, 1]): Promise<NonNullable<ImageResult['maps']>> {
  const [Th, Tw] = T;
  const stem = basename(it.path).replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_.-]+/g, '_');
  const rel = (kind: string) => join(RUN_FILES.maps, it.defect.replace(/[^A-Za-z0-9_.-]+/g, '_'), `${stem}.${kind}.png`);
  const img = await imageAt(it.path, T);
  const det = new Uint8Array(Th * Tw);
  for (let i = 0; i < det.length; i++) det[i] = nfa[i]! > 0 ? 1 : 0;
  const files = {
    anomaly: rel('anomaly'),
    nfa: rel('nfa'),
    segmentation: rel('segmentation'),
    overlay: rel('overlay'),
  };
  atomicWriteFile(join(dir, files.anomaly), heatmapPng(anomaly, Tw, Th, { range }));
  atomicWriteFile(join(dir, files.nfa), heatmapPng(nfa, Tw, Th, { range: nfaRange(nfa) }));
  atomicWriteFile(join(dir, files.segmentation), encodePng(drawContour(img, det, { thickness: 1 }), Tw, Th, 3));
  atomicWriteFile(join(dir, files.overlay), encodePng(overlayHeatmap(img, anomaly, Tw, Th, { range, alpha: 0.5 }), Tw, Th, 3));
  return files;
}
