/**
 * The commands. Each one that waits on the daemon shows cancellable progress and passes the
 * cancellation on (JSON-RPC $/cancelRequest, or uflow/cancel for a training job). They also take
 * arguments so tests and other extensions can run them without prompts, and return what they got.
 */
import * as vscode from 'vscode';
import {
  Methods,
  type DatasetInfo,
  type EstimateParams,
  type EstimateResult,
  type DownloadModelsResult,
  type Evaluation,
  type ExportResult,
  type ModelKind,
  type RunInfo,
  type TrainParams,
  type TrainResult,
} from '../server/protocol.js';
import { installBackend } from './backend.js';
import { confirmLimitMinutes, confirmTraining, minutesText } from './estimate.js';
import { errorMessage, isCancellation, type Daemon } from './daemon.js';
import { IMAGE_VIEW_TYPE } from './imageEditor.js';
import { ComparePanel, ResultsPanel, TrainingPanel, type PanelContext } from './panels.js';
import { exists, IMAGE_EXTENSIONS, isImagePath, listRuns, pickRun, readEvaluation } from './runs.js';
import type { RunsNode, RunsTreeProvider } from './runsTree.js';

export interface TrainOptions {
  category?: string;
  /** Overrides on top of the uflow.trainConfig setting. */
  config?: TrainParams['config'];
  /** Skip the "training started" notification. */
  quiet?: boolean;
}

export interface CommandContext extends PanelContext {
  runsTree: RunsTreeProvider;
}

const MVTEC_CATEGORIES = [
  'bottle', 'cable', 'capsule', 'carpet', 'grid', 'hazelnut', 'leather', 'metal_nut', 'pill', 'screw', 'tile', 'toothbrush', 'transistor', 'wood', 'zipper',
];

/** A run id from whatever a command was given: a string, a Runs view node, or a run. */
function runIdOf(arg: unknown): string | undefined {
  if (typeof arg === 'string') return arg;
  if (arg && typeof arg === 'object') {
    const a = arg as Partial<RunsNode> & { runId?: string; run?: RunInfo };
    if (typeof a.runId === 'string') return a.runId;
    if (a.run && typeof a.run.runId === 'string') return a.run.runId;
  }
  return undefined;
}

function showError(what: string, e: unknown, daemon: Daemon): void {
  if (isCancellation(e)) return;
  void vscode.window.showErrorMessage(`${what}: ${errorMessage(e)}`, 'Show Log').then((a) => a && daemon.output.show());
}

export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  const { daemon } = ctx;
  const reg = (id: string, fn: (...args: any[]) => unknown) =>
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        return await fn(...args);
      } catch (e) {
        showError(`U-Flow: ${id.replace(/^uflow\./, '')} failed`, e, daemon);
        return undefined;
      }
    });

  const train = async (model: ModelKind, uri?: vscode.Uri, _all?: vscode.Uri[], opts: TrainOptions = {}): Promise<TrainResult | undefined> => {
    let folder = uri instanceof vscode.Uri ? uri : undefined;
    if (!folder) {
      const picked = await vscode.window.showOpenDialog({
        canSelectFolders: true,
        canSelectFiles: false,
        canSelectMany: false,
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
        openLabel: model === 'fastflow' ? 'Train FastFlow' : 'Train U-Flow',
        title: 'Dataset folder (MVTec layout: <category>/train/good, or a folder of normal images)',
      });
      folder = picked?.[0];
      if (!folder) return undefined;
    }
    const path = folder.fsPath;
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `U-Flow: preparing training on ${vscode.workspace.asRelativePath(folder)}`, cancellable: true },
      async (progress, token) => {
        progress.report({ message: 'inspecting the dataset…' });
        const info = await daemon.request<DatasetInfo>(Methods.inspectDataset, { path }, token);
        for (const p of info.problems) daemon.output.appendLine(`[dataset] ${p.severity}: ${p.path}: ${p.message}`);
        const errors = info.problems.filter((p) => p.severity === 'error');
        if (errors.length || !info.categories.length) {
          const msg = errors[0]?.message ?? 'no training images found (expected <category>/train/good or a folder of images)';
          void vscode.window.showErrorMessage(`U-Flow cannot train on ${vscode.workspace.asRelativePath(folder!)}: ${msg}`, 'Show Log').then((a) => a && daemon.output.show());
          return undefined;
        }
        let categories: Array<string | undefined> = [opts.category];
        if (!opts.category && info.layout === 'mvtec-root' && info.categories.length > 1) {
          const items = info.categories.map((c) => ({
            label: c.name,
            description: `${c.trainGood} train · ${c.testGood + Object.values(c.defects).reduce((a, b) => a + b, 0)} test`,
            picked: false,
          }));
          const chosen = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Categories to train (one job each)', placeHolder: 'Select categories' }, token);
          if (!chosen?.length) return undefined;
          categories = chosen.length === info.categories.length ? [undefined] : chosen.map((c) => c.label);
        }
        const setting = vscode.workspace.getConfiguration('uflow').get<TrainParams['config']>('trainConfig') ?? {};
        // uflow.backbone: 'auto' (the daemon's default: it decides at train start) or one backbone for U-Flow runs.
        const backbone = vscode.workspace.getConfiguration('uflow').get<string>('backbone') ?? 'auto';
        let config: TrainParams['config'] = {
          model: { ...(model === 'uflow' && backbone !== 'auto' ? { backbone } : {}), ...(setting.model ?? {}), ...(opts.config?.model ?? {}) },
          trainer: { ...(setting.trainer ?? {}), ...(opts.config?.trainer ?? {}) },
        };
        const workspace = vscode.workspace.getWorkspaceFolder(folder!)?.uri.fsPath;
        // Know the cost before paying it: above uflow.confirmTrainingAboveMinutes, ask first.
        let estimate: EstimateResult | undefined;
        const limit = confirmLimitMinutes();
        if (limit > 0) {
          progress.report({ message: 'timing a few training steps…' });
          const named = categories.filter((c): c is string => c !== undefined);
          try {
            estimate = await daemon.request<EstimateResult>(
              Methods.estimate,
              { datasetPath: path, category: named.length === 1 ? named[0] : undefined, categories: named.length > 1 ? named : undefined, model, config, workspace, limitMinutes: limit } satisfies EstimateParams,
              token,
            );
          } catch (e) {
            if (isCancellation(e)) throw e;
            daemon.output.appendLine(`[estimate] no estimate: ${errorMessage(e)}`);
          }
          if (estimate) {
            daemon.output.appendLine(`[estimate] ${estimate.line}`);
            progress.report({ message: estimate.line });
            const choice = await confirmTraining(estimate, limit, config, token);
            if (choice.action === 'cancel') {
              daemon.output.appendLine('[estimate] not started: cancelled at the estimate');
              return undefined;
            }
            if (choice.config !== config && estimate.alternative) estimate = { ...estimate, totalSeconds: estimate.alternative.totalSeconds, categories: undefined };
            config = choice.config;
          }
        }
        const etaOf = (category: string) => estimate?.categories?.find((c) => c.category === category)?.totalSeconds ?? (estimate && !estimate.categories ? estimate.totalSeconds : undefined);
        const result: TrainResult = { jobs: [] };
        for (const category of categories) {
          progress.report({ message: `queuing ${category ?? 'all categories'}…` });
          const params: TrainParams = { datasetPath: path, category, model, config, workspace };
          const r = await daemon.request<TrainResult>(Methods.train, params, token);
          result.jobs.push(...r.jobs);
        }
        for (const j of result.jobs) {
          ctx.tracker.update({
            runId: j.runId, jobId: j.jobId, category: j.category, model, phase: 'features', epoch: 0,
            epochs: config?.trainer?.epochs ?? estimate?.epochs ?? 0, step: 0, steps: 0, message: j.position > 0 ? `queued (position ${j.position})` : 'starting',
            etaSeconds: etaOf(j.category), estimate: result.jobs.length === 1 ? estimate : undefined,
          });
        }
        void daemon.refreshStatus();
        ctx.runsTree.refresh();
        if (!opts.quiet && result.jobs.length) {
          const names = result.jobs.map((j) => j.category).join(', ');
          const cost = estimate ? ` ${estimate.atMost ? 'At most about' : 'About'} ${minutesText(estimate.totalSeconds)} (${estimate.line.replace(/^[^:]*: /, '')}).` : '';
          void vscode.window.showInformationMessage(`U-Flow: training ${names} (${model}) started.${cost}`, 'Show Training', 'Cancel').then((a) => {
            if (a === 'Show Training') void vscode.commands.executeCommand('uflow.showTraining', result.jobs[0]!.runId);
            if (a === 'Cancel') for (const j of result.jobs) void vscode.commands.executeCommand('uflow.cancelTraining', j.jobId);
          });
        }
        return result;
      },
    );
  };

  /** Continues an interrupted or cancelled run from its last checkpoint. */
  const resume = async (arg?: unknown): Promise<TrainResult | undefined> => {
    const runId = runIdOf(arg);
    const resumable = (r: RunInfo) => (r.state === 'interrupted' || r.state === 'cancelled' || r.state === 'failed') && r.epochsDone > 0;
    const run = runId
      ? (await listRuns(daemon)).find((r) => r.runId === runId)
      : await pickRun(daemon, { title: 'Resume which run?', filter: resumable, empty: 'No interrupted or cancelled U-Flow run to resume.' });
    if (!run) return undefined;
    const params: TrainParams = {
      datasetPath: run.datasetPath,
      category: run.category,
      model: run.model,
      resumeRunId: run.runId,
      workspace: vscode.workspace.getWorkspaceFolder(vscode.Uri.file(run.dir))?.uri.fsPath,
    };
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `U-Flow: resuming ${run.category} from epoch ${run.epochsDone}`, cancellable: true },
      (_p, token) => daemon.request<TrainResult>(Methods.train, params, token),
    );
    for (const j of result.jobs) {
      ctx.tracker.update({
        runId: j.runId, jobId: j.jobId, category: j.category, model: run.model, phase: 'features', epoch: run.epochsDone,
        epochs: run.config.trainer.epochs, step: 0, steps: 0, message: 'resuming',
      });
    }
    ctx.tracker.clearInterrupted();
    void daemon.refreshStatus();
    ctx.runsTree.refresh();
    return result;
  };

  const evaluate = async (arg?: unknown, opts: { show?: boolean; highPrecision?: boolean; allowMaskProblems?: boolean } = {}): Promise<Evaluation | undefined> => {
    const runId = runIdOf(arg);
    const run = runId
      ? (await listRuns(daemon)).find((r) => r.runId === runId)
      : await pickRun(daemon, {
          title: 'Evaluate which run?',
          filter: (r) => r.epochsDone > 0 && r.state !== 'running' && r.state !== 'queued',
          empty: 'No trained U-Flow run in this workspace yet: right-click a dataset folder and choose Train U-Flow.',
        });
    if (!run) {
      if (runId) void vscode.window.showErrorMessage(`U-Flow: no run '${runId}' in this workspace.`);
      return undefined;
    }
    const evaluation = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `U-Flow: evaluating ${run.category} (${run.model})`, cancellable: true },
      (progress, token) => {
        let last = 0;
        return daemon.requestWithProgress<Evaluation>(
          Methods.evaluate,
          { runId: run.runId, highPrecision: opts.highPrecision, ...(opts.allowMaskProblems ? { allowMaskProblems: true } : {}) },
          (p) => {
            const inc = p.percentage !== undefined ? Math.max(0, p.percentage - last) : undefined;
            if (p.percentage !== undefined) last = p.percentage;
            progress.report({ message: p.message, increment: inc });
          },
          token,
        );
      },
    );
    ctx.runsTree.refresh();
    if (opts.show !== false) await ResultsPanel.show(ctx, run, evaluation);
    return evaluation;
  };

  const openResults = async (arg?: unknown): Promise<ResultsPanel | undefined> => {
    const runId = runIdOf(arg);
    const runs = await listRuns(daemon);
    let run = runId ? runs.find((r) => r.runId === runId) : undefined;
    if (!run) {
      const withResults: RunInfo[] = [];
      for (const r of runs) if (await exists(`${r.dir}/evaluation.json`)) withResults.push(r);
      if (!withResults.length) {
        const a = await vscode.window.showInformationMessage('No evaluated U-Flow run yet.', 'Evaluate…');
        if (a) await vscode.commands.executeCommand('uflow.evaluate');
        return undefined;
      }
      run = await pickRun(daemon, { title: 'Results of which run?', filter: (r) => withResults.includes(r), empty: 'No evaluated U-Flow run yet.' });
      if (!run) return undefined;
    }
    const evaluation = await readEvaluation(run);
    if (!evaluation) {
      const a = await vscode.window.showInformationMessage(`Run ${run.runId} has not been evaluated yet.`, 'Evaluate');
      if (a) await evaluate(run.runId);
      return undefined;
    }
    return ResultsPanel.show(ctx, run, evaluation);
  };

  /**
   * Two runs of the same dataset and category side by side: both are evaluated (the daemon reuses
   * an unchanged evaluation.json), then the Compare view shows their metrics and maps.
   */
  const compareRuns = async (argA?: unknown, argB?: unknown): Promise<ComparePanel | undefined> => {
    const evaluable = (r: RunInfo) => r.epochsDone > 0 && r.state !== 'running' && r.state !== 'queued';
    const runs = await listRuns(daemon);
    const byId = (arg: unknown, which: string): RunInfo | undefined | null => {
      const id = runIdOf(arg);
      if (!id) return undefined;
      const r = runs.find((x) => x.runId === id);
      if (!r) void vscode.window.showErrorMessage(`U-Flow: no run '${id}' in this workspace (${which}).`);
      return r ?? null;
    };
    const givenA = byId(argA, 'first run');
    const givenB = byId(argB, 'second run');
    if (givenA === null || givenB === null) return undefined;
    const a =
      givenA ??
      (await pickRun(daemon, {
        title: 'Compare: first run',
        filter: evaluable,
        empty: 'No trained U-Flow run in this workspace yet: right-click a dataset folder and choose Train U-Flow.',
      }));
    if (!a) return undefined;
    const sameData = (r: RunInfo) => r.runId !== a.runId && r.datasetPath === a.datasetPath && r.category === a.category;
    const b =
      givenB ??
      (await pickRun(daemon, {
        title: `Compare ${a.category} (${a.model}) with which run?`,
        filter: (r) => evaluable(r) && sameData(r),
        empty: `No other trained run of ${a.category} on the same dataset to compare with.`,
      }));
    if (!b) return undefined;
    if (b.runId === a.runId || b.datasetPath !== a.datasetPath || b.category !== a.category) {
      void vscode.window.showErrorMessage(`U-Flow: runs ${a.runId} and ${b.runId} are not two runs of the same dataset and category.`);
      return undefined;
    }
    const evA = await evaluate(a.runId, { show: false });
    if (!evA) return undefined;
    const evB = await evaluate(b.runId, { show: false });
    if (!evB) return undefined;
    return ComparePanel.show(ctx, a, evA, b, evB);
  };

  const cancelTraining = async (arg?: unknown): Promise<boolean> => {
    // A string is a job id (the Training view sends those); a Runs view node or { runId } names a run.
    let jobId: string | undefined =
      typeof arg === 'string' ? arg : arg && typeof arg === 'object' && typeof (arg as { jobId?: unknown }).jobId === 'string' ? (arg as { jobId: string }).jobId : undefined;
    if (!jobId) {
      const status = await daemon.refreshStatus();
      const jobs = (status?.jobs ?? []).filter((j) => j.kind === 'train' && (j.state === 'running' || j.state === 'queued'));
      const runId = runIdOf(arg);
      const matching = runId ? jobs.filter((j) => j.runId === runId) : jobs;
      if (!matching.length) {
        void vscode.window.showInformationMessage('No U-Flow training is running.');
        return false;
      }
      if (matching.length === 1) jobId = matching[0]!.jobId;
      else {
        const picked = await vscode.window.showQuickPick(
          matching.map((j) => ({ label: j.title, description: j.state === 'queued' ? `queued (#${j.position})` : 'running', jobId: j.jobId })),
          { title: 'Cancel which training?' },
        );
        jobId = picked?.jobId;
      }
    }
    if (!jobId) return false;
    await daemon.request(Methods.cancel, { jobId });
    return true;
  };

  const predictImage = async (uri?: vscode.Uri): Promise<void> => {
    let target = uri instanceof vscode.Uri ? uri : undefined;
    if (!target) {
      const active = vscode.window.activeTextEditor?.document.uri ?? activeTabUri();
      if (active && isImagePath(active.fsPath)) target = active;
    }
    if (!target) {
      const picked = await vscode.window.showOpenDialog({
        canSelectMany: false,
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
        filters: { Images: IMAGE_EXTENSIONS },
        openLabel: 'Predict',
        title: 'Image to score with the newest U-Flow run',
      });
      target = picked?.[0];
    }
    if (!target) return;
    await vscode.commands.executeCommand('vscode.openWith', target, IMAGE_VIEW_TYPE);
  };

  const downloadModels = async (categories?: string[]): Promise<DownloadModelsResult | undefined> => {
    if (!Array.isArray(categories)) {
      const items = [{ label: 'All categories', all: true }, ...MVTEC_CATEGORIES.map((c) => ({ label: c, all: false }))];
      const chosen = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Download the published U-Flow checkpoints (MVTec AD)' });
      if (!chosen?.length) return undefined;
      categories = chosen.some((c) => c.all) ? undefined : chosen.map((c) => c.label);
    }
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'U-Flow: downloading pretrained models', cancellable: true },
      (progress, token) => {
        let last = 0;
        return daemon.requestWithProgress<DownloadModelsResult>(
          Methods.downloadModels,
          { categories },
          (p) => {
            const inc = p.percentage !== undefined ? Math.max(0, p.percentage - last) : undefined;
            if (p.percentage !== undefined) last = p.percentage;
            progress.report({ message: p.message, increment: inc });
          },
          token,
        );
      },
    );
    const fetched = result.files.filter((f) => !f.skipped).length;
    void vscode.window.showInformationMessage(`U-Flow: ${fetched} file(s) downloaded, ${result.files.length - fetched} already present (checksums verified).`);
    return result;
  };

  /**
   * A run's model as one ONNX file (uflow/export): the run from the Runs view or a quick pick, the
   * file from a save dialog (default <run folder>/model.onnx; `opts.out` skips the dialog). A
   * refusal is shown as the daemon's sentence.
   */
  const exportOnnx = async (arg?: unknown, opts: { out?: string } = {}): Promise<ExportResult | undefined> => {
    const runId = runIdOf(arg);
    const exportable = (r: RunInfo) => r.epochsDone > 0;
    const run = runId
      ? (await listRuns(daemon)).find((r) => r.runId === runId)
      : await pickRun(daemon, {
          title: 'Export which run to ONNX?',
          filter: exportable,
          empty: 'No trained U-Flow run in this workspace yet: right-click a dataset folder and choose Train U-Flow.',
        });
    if (!run) {
      if (runId) void vscode.window.showErrorMessage(`U-Flow: no run '${runId}' in this workspace.`);
      return undefined;
    }
    let out = opts.out;
    if (!out) {
      const target = await vscode.window.showSaveDialog({
        title: `Export ${run.category} (${run.runId}) to ONNX`,
        defaultUri: vscode.Uri.file(`${run.dir}/model.onnx`),
        filters: { 'ONNX model': ['onnx'] },
        saveLabel: 'Export',
      });
      if (!target) return undefined;
      out = target.fsPath;
    }
    let result: ExportResult;
    try {
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `U-Flow: exporting ${run.category} (${run.model}) to ONNX`, cancellable: true },
        (_progress, token) => daemon.request<ExportResult>(Methods.export, { runId: run.runId, out }, token),
      );
    } catch (e) {
      if (isCancellation(e)) return undefined;
      const sentence = errorMessage(e).replace(/^uflow\/export: /, '');
      void vscode.window.showErrorMessage(`U-Flow: ${sentence}`, 'Show Log').then((a) => a && daemon.output.show());
      return undefined;
    }
    const name = result.path.split(/[\\/]/).pop() ?? result.path;
    void vscode.window.showInformationMessage(`Exported ${name} (${formatBytes(result.bytes)})`, 'Reveal').then((a) => {
      if (a) void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(result.path));
    });
    return result;
  };

  return [
    reg('uflow.train', (uri?: vscode.Uri, all?: vscode.Uri[], opts?: TrainOptions) => train('uflow', uri, all, opts)),
    reg('uflow.trainFastflow', (uri?: vscode.Uri, all?: vscode.Uri[], opts?: TrainOptions) => train('fastflow', uri, all, opts)),
    reg('uflow.resumeTraining', resume),
    reg('uflow.evaluate', evaluate),
    reg('uflow.predictImage', predictImage),
    reg('uflow.openResults', openResults),
    reg('uflow.compareRuns', compareRuns),
    reg('uflow.exportOnnx', exportOnnx),
    reg('uflow.cancelTraining', cancelTraining),
    reg('uflow.showRuns', async () => {
      ctx.tracker.clearInterrupted();
      ctx.runsTree.refresh();
      await vscode.commands.executeCommand('uflow.runs.focus');
    }),
    reg('uflow.showTraining', async (arg?: unknown) => TrainingPanel.show(ctx, runIdOf(arg))),
    reg('uflow.refreshRuns', () => ctx.runsTree.refresh()),
    reg('uflow.installBackend', (choice?: 'gpu' | 'cpu') => installBackend(daemon, choice)),
    reg('uflow.downloadModels', downloadModels),
    reg('uflow.restartDaemon', () => daemon.restart()),
    reg('uflow.showLog', () => daemon.output.show(true)),
    reg('uflow.revealCheckpoint', (node?: RunsNode) => {
      if (node && node.kind === 'file') return vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(node.path));
      return undefined;
    }),
  ];
}

/** A byte count as people read it: 812 B, 14.2 KB, 3.4 MB (powers of 1024). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function activeTabUri(): vscode.Uri | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputText) return input.uri;
  return undefined;
}
