/**
 * `uflow`: the command line, mirroring the official U-Flow scripts (`-cat`, `-config`, `-data`,
 * `-train_dir`, `-hp`, `-overwrite` work as there; long forms too). One job per invocation; the
 * daemon (`uflow serve`) serves many.
 *
 * Exit codes: 0 done, 1 failed (bad dataset, missing run, training failure), 2 usage error,
 * 130 interrupted by Ctrl-C (the last complete epoch is kept).
 */
import { buildParser, DEFAULT_DATA, DEFAULT_TRAIN_DIR } from './cli-parser.js';
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Evaluation, InferenceInfo, ModelKind, NfaVariant, RunInfo, TrainingUpdate } from './protocol.js';
import { evaluate } from './evaluate.js';
import { categoriesWithRuns, listRuns, markInterrupted, PipelineError } from './runs.js';
import { train, type ConfigOverrides } from './train.js';
import { doctor } from './doctor.js';
import { runDemo } from './demo.js';
import { predictFolder } from './predict.js';
import { parseEngine, type InferenceEngine } from './onnx-engine.js';
import { formatEvaluationTable } from './report.js';
import { fsErrorSentence, isErrnoError } from '../models/io/fs-errors.js';
import { parseSize, sizeForConfig } from '../models/size.js';


class UsageError extends Error {}

function out(line = ''): void {
  process.stdout.write(line + '\n');
}
function err(line: string): void {
  process.stderr.write(line + '\n');
}

function fmtDuration(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '--';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

function fmtMetric(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '  -  ' : v.toFixed(4);
}

/** A one-line progress display on a terminal; one line per epoch otherwise (logs, CI, tests). */
export class TrainProgress {
  private lastEpochPrinted = 0;
  private readonly tty = Boolean(process.stderr.isTTY);
  private lineOpen = false;

  update(u: TrainingUpdate): void {
    if (u.phase === 'features') {
      if (u.estimate) return; // printed as a log line
      this.line(`features ${u.step}/${u.steps}${u.message ? ' ' + u.message : ''}`, u.step === u.steps);
      return;
    }
    if (u.phase === 'validate' && u.metrics) {
      this.finishLine();
      const m = u.metrics;
      err(`  validation epoch ${u.epoch}: image AUROC ${fmtMetric(m.image_auroc)}  pixel AUROC ${fmtMetric(m.pixel_auroc)}  AUPRO ${fmtMetric(m.aupro)}  mIoU ${fmtMetric(m.miou)}`);
      return;
    }
    if (u.phase !== 'train') return;
    const width = 24;
    const frac = u.epochs ? (u.epoch - 1 + (u.steps ? u.step / u.steps : 1)) / u.epochs : 0;
    const filled = Math.max(0, Math.min(width, Math.round(frac * width)));
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const text = `${bar} epoch ${u.epoch}/${u.epochs} step ${u.step}/${u.steps}  loss ${u.loss?.toFixed(3) ?? '-'}  ${u.imagesPerSecond?.toFixed(1) ?? '-'} img/s  ETA ${fmtDuration(u.etaSeconds)}`;
    const epochDone = u.step === u.steps;
    if (this.tty) this.line(text, false);
    else if (epochDone && u.epoch !== this.lastEpochPrinted) {
      this.lastEpochPrinted = u.epoch;
      err(text);
    }
  }

  private line(text: string, end: boolean): void {
    if (this.tty) {
      process.stderr.write('\r\x1b[2K' + text);
      this.lineOpen = true;
      if (end) this.finishLine();
    } else if (end) err(text);
  }

  finishLine(): void {
    if (this.lineOpen) process.stderr.write('\n');
    this.lineOpen = false;
  }
}

function parseOverrides(argv: Record<string, unknown>): ConfigOverrides {
  const o: ConfigOverrides = { model: {}, trainer: {} };
  if (argv.epochs !== undefined) o.trainer!.epochs = Number(argv.epochs);
  if (argv.batch !== undefined) o.trainer!.batch_train = Number(argv.batch);
  if (argv.lr !== undefined) o.trainer!.learning_rate = Number(argv.lr);
  if (argv['validate-every'] !== undefined) o.trainer!.validate_every = Number(argv['validate-every']);
  if (argv.seed !== undefined) o.trainer!.seed = Number(argv.seed);
  if (argv.backbone !== undefined) o.model!.backbone = String(argv.backbone);
  if (argv['input-size'] !== undefined) {
    try {
      o.model!.input_size = sizeForConfig(parseSize(String(argv['input-size'])));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  for (const [k, v] of Object.entries(o.trainer!)) if (!Number.isFinite(v as number)) throw new UsageError(`--${k} must be a number`);
  return o;
}

/** The dataset folder and category a command works on. `-data` may be a root of categories or a category itself. */
function datasetArgs(argv: Record<string, unknown>): { datasetPath: string; category?: string } {
  return { datasetPath: resolve(String(argv.data ?? DEFAULT_DATA)), category: argv.cat === undefined ? undefined : String(argv.cat) };
}

function trainDirArg(argv: Record<string, unknown>): string {
  const dir = resolve(String(argv.train_dir ?? DEFAULT_TRAIN_DIR));
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return dir; // created on first use
    if (code === 'ENOTDIR') throw new UsageError(`-train_dir ${dir}: a part of this path is a file, not a folder: choose a folder for the runs`);
    throw new UsageError(`-train_dir ${fsErrorSentence(e as NodeJS.ErrnoException & { code: string }, dir)}`);
  }
  if (!st.isDirectory()) throw new UsageError(`-train_dir ${dir} is a file, not a folder: choose a folder for the runs (default ${DEFAULT_TRAIN_DIR})`);
  return dir;
}

/** Prints a dataset report on stderr (stdout stays clean for --json). */
function printReport(_r: unknown, text: string): void {
  err(text);
}

async function cmdTrain(argv: Record<string, unknown>): Promise<number> {
  const trainDir = trainDirArg(argv);
  const { datasetPath, category } = datasetArgs(argv);
  if (argv.queue !== undefined) return (await import('./queue/commands.js')).trainOnQueue(argv, queueKit(argv));
  const ac = new AbortController();
  let interrupted = false;
  const onSigint = (): void => {
    if (interrupted) {
      err('\nsecond Ctrl-C: stopping now (the last complete epoch is on disk)');
      process.exit(130);
    }
    interrupted = true;
    err('\nCtrl-C: stopping after the current step; the last complete epoch is kept…');
    ac.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const progress = new TrainProgress();
  let runId: string | undefined;
  try {
    const run = await train(
      {
        datasetPath,
        category,
        model: (argv.model as ModelKind) ?? 'uflow',
        trainDir,
        configPath: argv.config === undefined ? undefined : resolve(String(argv.config)),
        config: parseOverrides(argv),
        resumeRunId: argv.resume === undefined ? undefined : String(argv.resume),
        backend: argv.backend as string | undefined,
        signal: ac.signal,
        estimate: argv.estimate === undefined ? undefined : Boolean(argv.estimate),
      },
      {
        onUpdate: (u) => {
          if (!runId) runId = u.runId;
          progress.update(u);
        },
        onLog: (line) => {
          progress.finishLine();
          err(line);
        },
        onDatasetReport: (r, text) => {
          progress.finishLine();
          printReport(r, text);
        },
      },
    );
    progress.finishLine();
    return reportTrainEnd(run);
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

function reportTrainEnd(run: RunInfo): number {
  const best = run.best;
  const bestText = [
    best.image_auroc !== undefined ? `image AUROC ${fmtMetric(best.image_auroc)}` : '',
    best.pixel_auroc !== undefined ? `pixel AUROC ${fmtMetric(best.pixel_auroc)}` : '',
    best.aupro !== undefined ? `AUPRO ${fmtMetric(best.aupro)}` : '',
    best.miou !== undefined ? `mIoU ${fmtMetric(best.miou)}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  switch (run.state) {
    case 'finished':
      out(`run ${run.runId} finished: ${run.epochsDone} epochs${bestText ? `, best ${bestText}` : ''}`);
      out(`  ${run.dir}`);
      return 0;
    case 'cancelled':
      err(`run ${run.runId} cancelled after ${run.epochsDone} complete epoch(s); its checkpoint is kept.`);
      err(`  resume with: uflow train -cat ${run.category} --resume ${run.runId}`);
      return 130;
    default:
      err(`run ${run.runId} ${run.state}: ${run.error ?? 'unknown error'}`);
      if (run.epochsDone > 0) err(`  the checkpoint of epoch ${run.epochsDone} is kept in ${run.dir}`);
      return 1;
  }
}

function evalSummaryLine(ev: Evaluation): string {
  const o = ev.overall;
  return `${ev.category}: image AUROC ${fmtMetric(o.image_auroc)}  pixel AUROC ${fmtMetric(o.pixel_auroc)}  AUPRO ${fmtMetric(o.aupro)}  mIoU@logNFA=0 ${fmtMetric(o.miou)}`;
}

async function cmdEvaluate(argv: Record<string, unknown>): Promise<number> {
  const trainDir = trainDirArg(argv);
  markInterrupted(trainDir);
  const cats = (argv.cat as string[] | undefined)?.map(String);
  const runId = argv.run === undefined ? undefined : String(argv.run);
  const dataGiven = argv.data !== undefined;
  const targets: Array<{ category?: string; runId?: string }> = [];
  if (runId) {
    if (cats && cats.length > 1) throw new UsageError('--run names one run: give at most one -cat with it');
    targets.push({ runId, category: cats?.[0] });
  } else if (cats?.length) {
    for (const c of cats) targets.push({ category: c });
  } else {
    const all = categoriesWithRuns(trainDir);
    if (!all.length) throw new PipelineError(`no trained runs in ${trainDir}: train one first (uflow train -cat <category> -data <dir>), or pass -train_dir`, 'NotFound');
    for (const c of all) targets.push({ category: c });
  }
  const results: Evaluation[] = [];
  let failed = 0;
  for (const t of targets) {
    try {
      const ev = await evaluate({
        trainDir,
        runId: t.runId,
        category: t.category,
        datasetPath: dataGiven ? resolve(String(argv.data)) : undefined,
        highPrecision: Boolean(argv.hp),
        nfa: argv.nfa as NfaVariant | undefined,
        checkpoint: (argv.checkpoint as 'best' | 'last' | undefined) ?? 'best',
        backend: argv.backend as string | undefined,
        ...engineArgs(argv, 'evaluate'),
        allowMaskProblems: Boolean(argv['allow-mask-problems']),
        onDatasetReport: printReport,
        onProgress: argv.json ? undefined : (done, total, msg) => {
          if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${msg} ${done}/${total}`);
          if (done === total && process.stderr.isTTY) process.stderr.write('\n');
        },
      });
      results.push(ev);
    } catch (e) {
      if (!(e instanceof PipelineError) || targets.length === 1) throw e;
      failed++;
      err(`${t.category ?? t.runId}: ${e.message}`);
    }
  }
  if (argv.json) {
    out(JSON.stringify(results.length === 1 && targets.length === 1 ? results[0] : results, null, 2));
  } else {
    for (const ev of results) {
      out(formatEvaluationTable(ev));
      if (ev.inference) out(`inference: ${inferenceLine(ev.inference)}`);
      out();
    }
    if (results.length > 1) for (const ev of results) out(evalSummaryLine(ev));
  }
  return failed ? 1 : 0;
}

/** --engine and --ort-provider; fallbacks are one line on stderr. */
function engineArgs(argv: Record<string, unknown>, cmd: string): { engine?: InferenceEngine; providers?: string[]; warn: (line: string) => void } {
  const providers = (argv['ort-provider'] as string[] | undefined)?.flatMap((p) => String(p).split(','));
  return { engine: parseEngine(argv.engine), providers, warn: (line) => err(`uflow ${cmd}: ${line}`) };
}

function inferenceLine(i: InferenceInfo): string {
  return i.engine === 'onnx' ? `onnxruntime (${(i.providers ?? ['cpu']).join(', ')}): ${i.reason}` : `tfjs: ${i.reason}`;
}

async function cmdPredict(argv: Record<string, unknown>): Promise<number> {
  const trainDir = trainDirArg(argv);
  markInterrupted(trainDir);
  const images = ((argv.image as string[] | undefined) ?? []).map((p) => resolve(String(p)));
  const category = argv.cat === undefined ? undefined : String(argv.cat);
  const outDir = argv.out === undefined ? undefined : resolve(String(argv.out));
  const res = await predictFolder({
    trainDir,
    runId: argv.run === undefined ? undefined : String(argv.run),
    checkpoint: argv.checkpoint === undefined ? undefined : resolve(String(argv.checkpoint)),
    category,
    images,
    datasetPath: argv.data === undefined ? undefined : resolve(String(argv.data)),
    outDir,
    nfa: argv.nfa as 'calibrated' | 'tree' | undefined,
    backend: argv.backend as string | undefined,
    ...engineArgs(argv, 'predict'),
  });
  if (argv.json) out(JSON.stringify(res, null, 2));
  else {
    out(`run ${res.runId} · detection: ${res.nfaVariant === 'calibrated' ? 'calibrated NFA (held-out normal images)' : `the paper’s ${res.nfaVariant} NFA (not calibrated)`} · inference: ${inferenceLine(res.inference)}${res.outDir ? ` · PNGs in ${res.outDir}` : ''}`);
    for (const r of res.images) out(`${r.imagePath}: ${r.verdict} (score ${r.score.toFixed(4)})`);
  }
  return 0;
}

async function cmdExport(argv: Record<string, unknown>): Promise<number> {
  const trainDir = trainDirArg(argv);
  markInterrupted(trainDir);
  const runId = argv.run === undefined ? undefined : String(argv.run);
  const category = argv.cat === undefined ? undefined : String(argv.cat);
  const { exportRun } = await import('./export.js');
  const res = await exportRun({ trainDir, runId, category, out: argv.out === undefined ? undefined : resolve(String(argv.out)), backend: argv.backend as string | undefined });
  if (argv.json) {
    out(JSON.stringify(res, null, 2));
    return 0;
  }
  const threshold = JSON.parse(res.metadata.threshold ?? '{}') as { variant?: string };
  out(`run ${res.runId} → ${res.path}`);
  out(`  ${(res.bytes / 1024).toFixed(0)} KiB, ${res.nodes} nodes, ${res.parameters} parameters, opset ${res.metadata.opset}; from ${basename(res.checkpoint)}`);
  for (const io of res.inputs) out(`  input  ${io.name.padEnd(12)} [${io.shape.join(', ')}]  ${io.description}`);
  for (const io of res.outputs) out(`  output ${io.name.padEnd(12)} [${io.shape.join(', ')}]  ${io.description}`);
  out(`  threshold: ${threshold.variant === 'calibrated' ? 'calibrated NFA (the calibration is in the metadata)' : "the paper's tree NFA (the run is not calibrated)"}; the NFA runs on the latents outside the graph`);
  return 0;
}

async function cmdDoctor(argv: Record<string, unknown>): Promise<number> {
  const report = await doctor({ backend: argv.backend as string | undefined });
  if (argv.json) out(JSON.stringify(report, null, 2));
  else out(report.text);
  return report.ok ? 0 : 1;
}

async function cmdDemo(argv: Record<string, unknown>): Promise<number> {
  const dir = resolve(String(argv.dir ?? './uflow-demo'));
  const progress = new TrainProgress();
  const res = await runDemo({
    dir,
    epochs: argv.epochs === undefined ? undefined : Number(argv.epochs),
    backend: argv.backend as string | undefined,
    onUpdate: (u) => progress.update(u),
    onLog: (l) => {
      progress.finishLine();
      err(l);
    },
  });
  progress.finishLine();
  out(formatEvaluationTable(res.evaluation));
  out();
  out(`report: ${res.reportPath}`);
  out(`took ${fmtDuration(res.seconds)} (train ${fmtDuration(res.trainSeconds)}, evaluate ${fmtDuration(res.evaluateSeconds)})`);
  return 0;
}

async function cmdRuns(argv: Record<string, unknown>): Promise<number> {
  const trainDir = trainDirArg(argv);
  markInterrupted(trainDir);
  const problems: Array<{ path: string; message: string }> = [];
  const runs = listRuns(trainDir, problems);
  for (const p of problems) err(`warning: ${p.message.includes(p.path) ? p.message : `${p.path}: ${p.message}`} (not listed: fix or remove the run folder)`);
  if (argv.json) {
    out(JSON.stringify(runs, null, 2));
    return 0;
  }
  if (!runs.length) {
    out(`no runs in ${join(trainDir, 'runs')}`);
    return 0;
  }
  for (const r of runs) {
    out(`${r.runId.padEnd(44)} ${r.state.padEnd(11)} epochs ${String(r.epochsDone).padStart(4)}/${r.config.trainer.epochs}  pixel AUROC ${fmtMetric(r.best.pixel_auroc)}`);
  }
  return 0;
}

async function cmdDownload(argv: Record<string, unknown>): Promise<number> {
  const { downloadModels, DriveQuotaError, MVTEC_CATEGORIES } = await import('./pretrained.js');
  const { ProgressBar } = await import('./progress-bar.js');
  const unknown = ((argv.cat as string[] | undefined) ?? []).map(String).filter((c) => !(MVTEC_CATEGORIES as readonly string[]).includes(c));
  if (unknown.length) {
    throw new PipelineError(`unknown categor${unknown.length > 1 ? 'ies' : 'y'} ${unknown.map((c) => `'${c}'`).join(', ')}: released models exist for ${MVTEC_CATEGORIES.join(', ')}`, 'Usage');
  }
  const root = resolve(String(argv.root ?? '.'));
  const bar = new ProgressBar({ stream: process.stderr });
  let current = '';
  try {
    const res = await downloadModels({
      root,
      categories: (argv.cat as string[] | undefined)?.map(String),
      overwrite: Boolean(argv.overwrite),
      onProgress: (p) => {
        const label = `[${p.index}/${p.count}] ${p.metric}/${p.category}`;
        if (label !== current) {
          if (current) bar.done();
          current = label;
          bar.setLabel(label);
        }
        bar.update({ bytes: p.bytes, total: p.total, rate: p.rate });
      },
    });
    if (current) bar.done();
    for (const f of res.files) out(`${f.skipped ? 'present ' : 'fetched '} ${f.path}  ${f.sha256}`);
    return 0;
  } catch (e) {
    if (current) bar.fail('failed');
    if (e instanceof DriveQuotaError || e instanceof Error) throw new PipelineError((e as Error).message, 'NotAvailable');
    throw e;
  }
}

/** What the queue commands (server/queue/commands.ts) borrow from this file. */
function queueKit(argv: Record<string, unknown>): import('./queue/commands.js').CliKit {
  return { parseOverrides, progress: () => new TrainProgress(), reportTrainEnd, trainDir: trainDirArg(argv), ...datasetArgs(argv) };
}

async function cmdServe(): Promise<number> {
  const { serveMain } = await import('./server.js');
  const i = process.argv.indexOf('serve');
  return serveMain(i >= 0 ? process.argv.slice(i + 1) : []);
}

const COMMANDS: Record<string, (argv: Record<string, unknown>) => Promise<number>> = {
  train: cmdTrain,
  evaluate: cmdEvaluate,
  predict: cmdPredict,
  export: cmdExport,
  doctor: cmdDoctor,
  demo: cmdDemo,
  runs: cmdRuns,
  'download-models': cmdDownload,
  'download-backbone': async (argv) => (await import('./cli-download-backbone.js')).cmdDownloadBackbone(argv),
  serve: () => cmdServe(),
  worker: async (argv) => (await import('./queue/commands.js')).cmdWorker(argv),
  jobs: async (argv) => (await import('./queue/commands.js')).cmdJobs(argv, queueKit(argv)),
  'train-all': async (argv) => (await import('./queue/commands.js')).cmdTrainAll(argv, queueKit(argv)),
};

export async function main(args: string[]): Promise<number> {
  // The daemon parses its own flags (server/connection.ts).
  if (args[0] === 'serve') {
    const { serveMain } = await import('./server.js');
    return serveMain(args.slice(1));
  }
  let usage: string | undefined;
  let argv: Record<string, unknown>;
  const parser = buildParser(args).fail((msg, e) => {
    usage = msg ?? e?.message ?? 'invalid arguments';
  });
  try {
    argv = (await parser.parseAsync()) as Record<string, unknown>;
  } catch (e) {
    usage ??= (e as Error).message;
    argv = {};
  }
  if (usage) {
    err(`uflow: ${usage}`);
    err(`run 'uflow --help' or 'uflow <command> --help' for the options`);
    return 2;
  }
  const cmd = String((argv._ as unknown[])[0] ?? '');
  if (argv.help && cmd !== 'serve') return 0;
  const run = COMMANDS[cmd];
  if (!run) {
    err(`uflow: unknown command '${cmd}'; run 'uflow --help'`);
    return 2;
  }
  try {
    return await run(argv);
  } catch (e) {
    if (e instanceof UsageError || (e instanceof PipelineError && e.code === 'Usage')) {
      err(`uflow ${cmd}: ${e.message}`);
      return 2;
    }
    if (e instanceof PipelineError) {
      err(`uflow ${cmd}: ${e.message}`);
      return 1;
    }
    if (isErrnoError(e)) {
      err(`uflow ${cmd}: ${fsErrorSentence(e)}`);
      return 1;
    }
    const msg = (e as Error)?.message ?? String(e);
    err(`uflow ${cmd}: internal error: ${msg}`);
    if (process.env.UFLOW_DEBUG) err((e as Error)?.stack ?? '');
    else err('  (set UFLOW_DEBUG=1 for the stack trace, and please report it)');
    return 1;
  }
}

// Run when executed (dist/cli.js), not when imported by tests.
const invokedDirectly = (() => {
  const a = process.argv[1];
  return a !== undefined && /(?:^|[/\\])cli\.(?:js|ts|mjs)$/.test(a) && existsSync(a);
})();
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Let stdout drain, then leave even if a backend keeps handles open.
      setImmediate(() => process.exit(code));
    },
    (e) => {
      err(`uflow: internal error: ${(e as Error)?.message ?? e}`);
      process.exit(1);
    },
  );
}
