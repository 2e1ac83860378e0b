/**
 * Hosts of the Training and Results webview panels. The webviews only talk to this side by
 * postMessage; everything they show comes from here (data URIs, or webview URIs of the run's
 * own folder). Both panels survive hiding (retainContextWhenHidden) and reloads (serializers +
 * the webview's own setState).
 */
import { isAbsolute, join } from 'node:path';
import * as vscode from 'vscode';
import type { Evaluation, ImageResult, RunInfo } from '../server/protocol.js';
import type {
  CompareFromWebview,
  GalleryFromWebview,
  ComparePair,
  CompareToWebview,
  GalleryImages,
  ResultsFromWebview,
  ResultsState,
  ResultsToWebview,
  TrainingFromWebview,
  TrainingRunView,
  TrainingState,
  TrainingToWebview,
} from '../webview/shared.js';
import { errorMessage, type Daemon } from './daemon.js';
import type { Predictions } from './predictions.js';
import { fileDataUri, findRun, listRuns, readEvaluation } from './runs.js';
import type { TrainingTracker } from './training.js';
import { webviewHtml, webviewOptions } from './webviewHtml.js';

export const TRAINING_VIEW_TYPE = 'uflow.training';
export const RESULTS_VIEW_TYPE = 'uflow.results';
export const COMPARE_VIEW_TYPE = 'uflow.compare';

// ---------------------------------------------------------------------------------------------
// Training

export class TrainingPanel {
  static current: TrainingPanel | undefined;
  private readonly subs: vscode.Disposable[] = [];
  private selected: string | undefined;

  static async show(ctx: PanelContext, runId?: string): Promise<TrainingPanel> {
    if (TrainingPanel.current) {
      TrainingPanel.current.panel.reveal(undefined, false);
      if (runId) await TrainingPanel.current.select(runId);
      return TrainingPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(TRAINING_VIEW_TYPE, 'U-Flow Training', vscode.ViewColumn.Active, {
      ...webviewOptions(ctx.context.extensionUri),
      retainContextWhenHidden: true,
    });
    const p = new TrainingPanel(ctx, panel, runId);
    return p;
  }

  constructor(
    private readonly ctx: PanelContext,
    readonly panel: vscode.WebviewPanel,
    runId?: string,
  ) {
    TrainingPanel.current = this;
    this.selected = runId;
    panel.iconPath = vscode.Uri.joinPath(ctx.context.extensionUri, 'media', 'uflow.svg');
    panel.webview.options = { ...webviewOptions(ctx.context.extensionUri) };
    panel.webview.html = webviewHtml(panel.webview, ctx.context.extensionUri, 'training', 'U-Flow Training');
    this.subs.push(
      panel.webview.onDidReceiveMessage((m: TrainingFromWebview) => this.onMessage(m)),
      ctx.tracker.onDidChange((run) => this.post({ type: 'update', run })),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  private post(m: TrainingToWebview): void {
    void this.panel.webview.postMessage(m);
  }

  private async onMessage(m: TrainingFromWebview): Promise<void> {
    switch (m.type) {
      case 'ready':
        await this.sendAll();
        break;
      case 'cancel':
        await vscode.commands.executeCommand('uflow.cancelTraining', m.jobId);
        break;
      case 'evaluate':
        await vscode.commands.executeCommand('uflow.evaluate', m.runId);
        break;
      case 'select':
        this.selected = m.runId;
        break;
    }
  }

  async select(runId: string): Promise<void> {
    this.selected = runId;
    await this.sendAll();
  }

  private async sendAll(): Promise<void> {
    const views: TrainingRunView[] = [...this.ctx.tracker.all()];
    // Runs trained earlier (or before a reload): their curves come from metrics.jsonl.
    try {
      const runs = await listRuns(this.ctx.daemon);
      for (const r of runs.slice(0, 20)) {
        if (!views.some((v) => v.runId === r.runId)) views.push(await this.ctx.tracker.fromRun(r));
        else if (r.runId === this.selected) await this.ctx.tracker.fromRun(r);
      }
    } catch {
      /* the daemon may be restarting: live runs only */
    }
    const selected = this.selected ?? this.ctx.tracker.latest()?.runId ?? views[0]?.runId;
    this.post({ type: 'runs', runs: views, selected });
  }

  dispose(): void {
    if (TrainingPanel.current === this) TrainingPanel.current = undefined;
    for (const s of this.subs) s.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Results

export interface PanelContext {
  context: vscode.ExtensionContext;
  daemon: Daemon;
  tracker: TrainingTracker;
  predictions: Predictions;
}

/**
 * What the Results and Compare panels share: the webview handshake (the first 'ready' releases
 * `ready`; a later one means the webview reloaded and needs its data again), lazily requested
 * gallery images, and opening an image in the U-Flow Image View beside.
 */
abstract class GalleryPanel<ToWebview> {
  protected readonly subs: vscode.Disposable[] = [];
  protected readonly ready: Promise<void>;
  private markReady!: () => void;
  private wasReady = false;

  protected constructor(readonly panel: vscode.WebviewPanel) {
    this.ready = new Promise((res) => (this.markReady = res));
  }

  protected post(m: ToWebview): void {
    void this.panel.webview.postMessage(m);
  }

  /** Sends everything the webview shows (again, after it reloaded). */
  protected abstract resend(): void;
  protected abstract sendImages(paths: string[]): Promise<void>;

  protected async onGalleryMessage(m: GalleryFromWebview): Promise<void> {
    switch (m.type) {
      case 'ready':
        if (this.wasReady) this.resend();
        this.wasReady = true;
        this.markReady();
        break;
      case 'needImages':
        await this.sendImages(m.paths);
        break;
      case 'openImage':
        await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(m.path), 'uflow.imageView', vscode.ViewColumn.Beside);
        break;
    }
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
  }
}

export class ResultsPanel extends GalleryPanel<ResultsToWebview> {
  static readonly panels = new Map<string, ResultsPanel>();
  private evaluation: Evaluation | undefined;

  static async show(ctx: PanelContext, run: RunInfo, evaluation: Evaluation): Promise<ResultsPanel> {
    let p = ResultsPanel.panels.get(run.runId);
    if (p) {
      p.panel.reveal(undefined, false);
    } else {
      const panel = vscode.window.createWebviewPanel(RESULTS_VIEW_TYPE, resultsTitle(run), vscode.ViewColumn.Active, {
        ...webviewOptions(ctx.context.extensionUri, [vscode.Uri.file(run.dir)]),
        retainContextWhenHidden: true,
      });
      p = new ResultsPanel(ctx, panel, run);
    }
    await p.setEvaluation(evaluation);
    return p;
  }

  constructor(
    private readonly ctx: PanelContext,
    panel: vscode.WebviewPanel,
    readonly run: RunInfo,
  ) {
    super(panel);
    ResultsPanel.panels.set(run.runId, this);
    panel.title = resultsTitle(run);
    panel.iconPath = vscode.Uri.joinPath(ctx.context.extensionUri, 'media', 'uflow.svg');
    panel.webview.options = webviewOptions(ctx.context.extensionUri, [vscode.Uri.file(run.dir)]);
    panel.webview.html = webviewHtml(panel.webview, ctx.context.extensionUri, 'results', resultsTitle(run));
    this.subs.push(
      panel.webview.onDidReceiveMessage((m: ResultsFromWebview) => this.onMessage(m)),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  async setEvaluation(evaluation: Evaluation): Promise<void> {
    this.evaluation = evaluation;
    await this.ready;
    this.resend();
  }

  protected resend(): void {
    if (!this.evaluation) return;
    this.post({ type: 'evaluation', evaluation: this.evaluation, run: this.run, title: resultsTitle(this.run) });
  }

  private async onMessage(m: ResultsFromWebview): Promise<void> {
    if (m.type === 'reevaluate') await vscode.commands.executeCommand('uflow.evaluate', this.run.runId);
    else await this.onGalleryMessage(m);
  }

  protected async sendImages(paths: string[]): Promise<void> {
    const ev = this.evaluation;
    if (!ev) return;
    const byPath = new Map(ev.images.map((i) => [i.path, i]));
    // Small batches so the first rows appear quickly.
    for (let i = 0; i < paths.length; i += 8) {
      const batch: Record<string, GalleryImages> = {};
      await Promise.all(
        paths.slice(i, i + 8).map(async (path) => {
          const r = byPath.get(path);
          if (!r) return;
          const g = await galleryImages(this.ctx, this.panel.webview, this.run, r);
          batch[path] = g;
        }),
      );
      this.post({ type: 'images', images: batch });
    }
  }

  override dispose(): void {
    if (ResultsPanel.panels.get(this.run.runId) === this) ResultsPanel.panels.delete(this.run.runId);
    super.dispose();
  }
}

/**
 * The pictures of one test image of a run: the image and its mask as data URIs; the maps as
 * webview URIs of the cached PNGs in the run folder (the webview's localResourceRoots must hold
 * run.dir), or predicted now when the evaluation cached none. `withImage: false` skips the image
 * and the mask (the Compare view takes them once for both runs).
 */
async function galleryImages(ctx: PanelContext, webview: vscode.Webview, run: RunInfo, r: ImageResult, withImage = true): Promise<GalleryImages> {
  const g: GalleryImages = {};
  if (withImage) {
    const [image, mask] = await Promise.all([fileDataUri(r.path, 16 * 1024 * 1024), r.maskPath ? fileDataUri(r.maskPath, 16 * 1024 * 1024) : undefined]);
    g.image = image;
    g.mask = mask;
  }
  if (r.maps) {
    const u = (rel: string | undefined) => (rel ? webview.asWebviewUri(vscode.Uri.file(isAbsolute(rel) ? rel : join(run.dir, rel))).toString() : undefined);
    g.anomaly = u(r.maps.overlay ?? r.maps.anomaly);
    g.nfa = u(r.maps.nfa);
    g.segmentation = u(r.maps.segmentation);
  } else {
    try {
      const p = await ctx.predictions.predict(r.path, { runId: run.runId });
      g.anomaly = p.anomalyMapPng;
      g.nfa = p.nfaMapPng;
      g.segmentation = p.segmentationPng;
    } catch (e) {
      g.error = errorMessage(e);
    }
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// Compare: two evaluated runs of the same dataset side by side (metrics and maps)

export class ComparePanel extends GalleryPanel<CompareToWebview> {
  static readonly panels = new Map<string, ComparePanel>();
  readonly key: string;

  static async show(ctx: PanelContext, a: RunInfo, evA: Evaluation, b: RunInfo, evB: Evaluation): Promise<ComparePanel> {
    const key = `${a.runId}|${b.runId}`;
    let p = ComparePanel.panels.get(key);
    if (p) {
      p.panel.reveal(undefined, false);
    } else {
      const panel = vscode.window.createWebviewPanel(COMPARE_VIEW_TYPE, compareTitle(a, b), vscode.ViewColumn.Active, {
        ...webviewOptions(ctx.context.extensionUri, [vscode.Uri.file(a.dir), vscode.Uri.file(b.dir)]),
        retainContextWhenHidden: true,
      });
      p = new ComparePanel(ctx, panel, a, b);
    }
    p.evA = evA;
    p.evB = evB;
    await p.ready;
    p.resend();
    return p;
  }

  private evA: Evaluation | undefined;
  private evB: Evaluation | undefined;

  private constructor(
    private readonly ctx: PanelContext,
    panel: vscode.WebviewPanel,
    readonly a: RunInfo,
    readonly b: RunInfo,
  ) {
    super(panel);
    this.key = `${a.runId}|${b.runId}`;
    ComparePanel.panels.set(this.key, this);
    panel.iconPath = vscode.Uri.joinPath(ctx.context.extensionUri, 'media', 'uflow.svg');
    panel.webview.html = webviewHtml(panel.webview, ctx.context.extensionUri, 'compare', compareTitle(a, b));
    this.subs.push(
      panel.webview.onDidReceiveMessage((m: CompareFromWebview) => this.onGalleryMessage(m)),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  protected resend(): void {
    if (!this.evA || !this.evB) return;
    this.post({ type: 'compare', a: { run: this.a, evaluation: this.evA }, b: { run: this.b, evaluation: this.evB }, title: compareTitle(this.a, this.b) });
  }

  protected async sendImages(paths: string[]): Promise<void> {
    if (!this.evA || !this.evB) return;
    const byA = new Map(this.evA.images.map((i) => [i.path, i]));
    const byB = new Map(this.evB.images.map((i) => [i.path, i]));
    const webview = this.panel.webview;
    for (let i = 0; i < paths.length; i += 8) {
      const batch: Record<string, ComparePair> = {};
      await Promise.all(
        paths.slice(i, i + 8).map(async (path) => {
          const ra = byA.get(path);
          const rb = byB.get(path);
          const any = ra ?? rb;
          if (!any) return;
          const [image, a, b] = await Promise.all([
            Promise.all([fileDataUri(any.path, 16 * 1024 * 1024), any.maskPath ? fileDataUri(any.maskPath, 16 * 1024 * 1024) : undefined]),
            ra ? galleryImages(this.ctx, webview, this.a, ra, false) : undefined,
            rb ? galleryImages(this.ctx, webview, this.b, rb, false) : undefined,
          ]);
          batch[path] = { image: image[0], mask: image[1], a, b };
        }),
      );
      this.post({ type: 'images', images: batch });
    }
  }

  override dispose(): void {
    if (ComparePanel.panels.get(this.key) === this) ComparePanel.panels.delete(this.key);
    super.dispose();
  }
}

function compareTitle(a: RunInfo, b: RunInfo): string {
  return `U-Flow Compare: ${a.category} (${a.model} vs ${b.model})`;
}

function resultsTitle(run: RunInfo): string {
  return `U-Flow Results: ${run.category} (${run.model})`;
}

// ---------------------------------------------------------------------------------------------
// Restoring panels after a window reload

export function registerPanelSerializers(ctx: PanelContext): vscode.Disposable[] {
  return [
    vscode.window.registerWebviewPanelSerializer(TRAINING_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: TrainingState | undefined) {
        new TrainingPanel(ctx, panel, state?.selected);
      },
    }),
    vscode.window.registerWebviewPanelSerializer(RESULTS_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: ResultsState | undefined) {
        const log = (m: string) => ctx.daemon.output.appendLine(`[extension] restoring results ${state?.runId ?? '(no run)'}: ${m}`);
        try {
          const run = state?.runId ? await findRun(ctx.daemon, state.runId) : undefined;
          const evaluation = run ? await readEvaluation(run) : undefined;
          if (!run || !evaluation) {
            log(run ? 'its evaluation.json is gone' : 'the run is no longer in this workspace');
            panel.dispose();
            return;
          }
          const p = new ResultsPanel(ctx, panel, run);
          await p.setEvaluation(evaluation);
          log('done');
        } catch (e) {
          log(errorMessage(e));
          panel.dispose();
        }
      },
    }),
  ];
}
