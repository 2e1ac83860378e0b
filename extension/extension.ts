/**
 * U-Flow for VS Code: a thin client. Everything heavy runs in the daemon (dist/server.js, JSON-RPC
 * over Node IPC, contract in server/protocol.ts); this side shows what it reports: status bar,
 * Runs view, Training and Results webviews, the image view and hovers.
 */
import * as vscode from 'vscode';
import { registerCommands } from './commands.js';
import { Daemon, errorMessage } from './daemon.js';
import { ImagePathHoverProvider } from './hover.js';
import { IMAGE_VIEW_TYPE, ImageViewProvider } from './imageEditor.js';
import { registerPanelSerializers, ResultsPanel, TrainingPanel } from './panels.js';
import { Predictions } from './predictions.js';
import { RunsTreeProvider } from './runsTree.js';
import { StatusBar } from './statusBar.js';
import { TrainingTracker } from './training.js';
import { DatasetReports } from './datasetReport.js';
import { onDidShowTrainingChoice, type ShownTrainingChoice } from './estimate.js';

/** What activate() returns: used by the integration tests (and other extensions). */
export interface UFlowApi {
  daemon: Daemon;
  tracker: TrainingTracker;
  statusBar: StatusBar;
  runsTree: RunsTreeProvider;
  imageViews: ImageViewProvider;
  hover: ImagePathHoverProvider;
  predictions: Predictions;
  panels: { training: () => TrainingPanel | undefined; results: () => ResultsPanel[] };
  datasetReports: DatasetReports;
  /** A training's estimate was above uflow.confirmTrainingAboveMinutes and its quick pick is shown (tests pick through it). */
  onDidShowTrainingChoice: vscode.Event<ShownTrainingChoice>;
}

let daemonRef: Daemon | undefined;

export function activate(context: vscode.ExtensionContext): UFlowApi {
  const output = vscode.window.createOutputChannel('U-Flow');
  context.subscriptions.push(output);
  const daemon = new Daemon(context, output);
  daemonRef = daemon;
  const tracker = new TrainingTracker();
  const predictions = new Predictions(daemon);
  const statusBar = new StatusBar(daemon, tracker);
  const runsTree = new RunsTreeProvider(daemon, tracker, predictions);
  const imageViews = new ImageViewProvider(context, daemon, predictions);
  const hover = new ImagePathHoverProvider(predictions);
  const panelCtx = { context, daemon, tracker, predictions };
  const datasetReports = new DatasetReports(output);
  const noticed = new Set<string>();

  context.subscriptions.push(
    daemon,
    tracker,
    predictions,
    statusBar,
    runsTree,
    daemon.onTrainingUpdate((u) => {
      tracker.update(u);
      // A notice the daemon attached to a run (e.g. backbone auto fell back to the bundled backbone): shown once.
      if (u.notice && !noticed.has(u.runId)) {
        noticed.add(u.runId);
        void vscode.window.showInformationMessage(`U-Flow ${u.category}: ${u.notice}`);
      }
    }),
    datasetReports,
    daemon.onDatasetReport((n) => datasetReports.show(n)),
    daemon.onJobEnded((e) => {
      tracker.jobEnded(e);
      if (e.kind === 'train' && e.state === 'failed') {
        void vscode.window.showErrorMessage(`U-Flow training failed: ${e.error ?? 'see the log'}`, 'Show Log').then((a) => a && output.show());
      }
    }),
    daemon.onDidExit((e) => {
      if (e.expected) return;
      const lost = tracker.daemonDied();
      if (lost.length) {
        void vscode.window.showWarningMessage(
          `The U-Flow daemon stopped while training ${lost.map((r) => r.category).join(', ')}; it is being restarted. The run keeps its last checkpoint.`,
          'Show Runs',
          'Show Log',
        ).then((a) => {
          if (a === 'Show Runs') void vscode.commands.executeCommand('uflow.showRuns');
          if (a === 'Show Log') output.show();
        });
      }
    }),
    daemon.onDidChangeStatus((s) => {
      void vscode.commands.executeCommand('setContext', 'uflow.fastflowAvailable', s.models.includes('fastflow'));
      const training = s.jobs.some((j) => j.kind === 'train' && (j.state === 'running' || j.state === 'queued'));
      void vscode.commands.executeCommand('setContext', 'uflow.training', training);
    }),
    vscode.window.registerTreeDataProvider('uflow.runs', runsTree),
    vscode.window.registerCustomEditorProvider(IMAGE_VIEW_TYPE, imageViews, {
      supportsMultipleEditorsPerDocument: true,
      webviewOptions: { retainContextWhenHidden: false },
    }),
    vscode.languages.registerHoverProvider([{ scheme: 'file' }, { scheme: 'untitled' }, { scheme: 'vscode-remote' }], hover),
    ...registerPanelSerializers(panelCtx),
    ...registerCommands({ ...panelCtx, runsTree }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('uflow.serverPath') || e.affectsConfiguration('uflow.backend') || e.affectsConfiguration('uflow.inferenceEngine') || e.affectsConfiguration('uflow.queue') || e.affectsConfiguration('uflow.allowedFolders')) {
        void daemon.configurationChanged().catch((err) => output.appendLine(`[extension] restart failed: ${errorMessage(err)}`));
      }
    }),
  );

  void daemon.start().catch((e) => {
    output.appendLine(`[extension] ${errorMessage(e)}`);
  });

  return {
    daemon,
    tracker,
    statusBar,
    runsTree,
    imageViews,
    hover,
    predictions,
    panels: { training: () => TrainingPanel.current, results: () => [...ResultsPanel.panels.values()] },
    datasetReports,
    onDidShowTrainingChoice,
  };
}

export async function deactivate(): Promise<void> {
  await daemonRef?.stop();
  daemonRef = undefined;
}
