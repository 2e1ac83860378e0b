/**
 * What the webviews and the extension say to each other (postMessage), plus small browser helpers
 * every view uses. Not bundled on its own (esbuild.mjs skips shared.ts): the views import it, and
 * the extension imports its types only. Data types come from server/protocol.ts.
 */
import type { Evaluation, Prediction, RunInfo, TrainingUpdate, ValidationMetrics } from '../server/protocol.js';
import {
  provideVSCodeDesignSystem,
  vsCodeBadge,
  vsCodeButton,
  vsCodeCheckbox,
  vsCodeDivider,
  vsCodeDropdown,
  vsCodeOption,
  vsCodeProgressRing,
  vsCodeTag,
  vsCodeTextField,
} from '@vscode/webview-ui-toolkit';
import {
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  ScatterController,
  Tooltip,
} from 'chart.js';


// ---------------------------------------------------------------------------------------------
// Training view

/** One epoch's line in the curves (from uflow/trainingUpdate or metrics.jsonl). */
export interface EpochPoint {
  epoch: number;
  loss?: number;
  imagesPerSecond?: number;
  metrics?: ValidationMetrics;
}

export interface TrainingRunView {
  runId: string;
  jobId?: string;
  category: string;
  model: string;
  /** 'running' while updates arrive; then the run's state. */
  state: string;
  epochs: number;
  last?: TrainingUpdate;
  points: EpochPoint[];
  message?: string;
  /** The estimate made before the training (TrainingUpdate.estimate's line). */
  estimate?: string;
}

export type TrainingToWebview =
  | { type: 'runs'; runs: TrainingRunView[]; selected?: string }
  | { type: 'update'; run: TrainingRunView };

export type TrainingFromWebview =
  | { type: 'ready' }
  | { type: 'cancel'; jobId: string }
  | { type: 'evaluate'; runId: string }
  | { type: 'select'; runId: string };

export interface TrainingState {
  selected?: string;
}

// ---------------------------------------------------------------------------------------------
// Results view

export interface GalleryImages {
  /** Data URIs (or webview URIs) keyed by ImageResult.path. */
  image?: string;
  mask?: string;
  anomaly?: string;
  nfa?: string;
  segmentation?: string;
  error?: string;
}

export type ResultsToWebview =
  | { type: 'evaluation'; evaluation: Evaluation; run?: RunInfo; title: string }
  | { type: 'images'; images: Record<string, GalleryImages> }
  | { type: 'error'; message: string };

/** What the gallery webviews (Results, Compare) both send: the handshake, lazy images, open an image. */
export type GalleryFromWebview = { type: 'ready' } | { type: 'needImages'; paths: string[] } | { type: 'openImage'; path: string };

export type ResultsFromWebview = GalleryFromWebview | { type: 'reevaluate' };

export interface ResultsState {
  runId?: string;
  sort?: 'score-desc' | 'score-asc' | 'name';
  defect?: string;
  outcome?: 'all' | 'correct' | 'missed' | 'false-alarm';
  /** log NFA threshold: an image is flagged when some pixel has log NFA below it. */
  threshold?: number;
  scrollY?: number;
}

// ---------------------------------------------------------------------------------------------
// Compare view (two runs of the same dataset side by side)

export interface CompareSide {
  run: RunInfo;
  evaluation: Evaluation;
}

/** One test image's pictures: `image` and `mask` once, then each run's maps. */
export interface ComparePair {
  image?: string;
  mask?: string;
  a?: GalleryImages;
  b?: GalleryImages;
}

export type CompareToWebview =
  | { type: 'compare'; a: CompareSide; b: CompareSide; title: string }
  | { type: 'images'; images: Record<string, ComparePair> };

export type CompareFromWebview = GalleryFromWebview;

// ---------------------------------------------------------------------------------------------
// Image view (custom editor)

export type ImageToWebview =
  | { type: 'image'; name: string; src?: string; note?: string }
  | { type: 'busy'; message: string }
  | { type: 'prediction'; prediction: Prediction }
  | { type: 'error'; message: string };

export type ImageFromWebview = { type: 'ready' } | { type: 'predict' } | { type: 'hover'; inside: boolean };

// ---------------------------------------------------------------------------------------------
// Browser helpers

export interface VsCodeApi<S> {
  postMessage(message: unknown): void;
  getState(): S | undefined;
  setState(state: S): void;
}

declare function acquireVsCodeApi<S>(): VsCodeApi<S>;

let api: VsCodeApi<unknown> | undefined;
export function vscodeApi<S>(): VsCodeApi<S> {
  api ??= acquireVsCodeApi<unknown>();
  return api as VsCodeApi<S>;
}

/** Adds a stylesheet without inline <style> (the CSP allows none). */
export function addStyles(css: string): void {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(css);
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Array<Node | string | undefined>
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') e.className = String(v);
    else if (k === 'text') e.textContent = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== undefined) e.append(c);
  return e;
}

/** A gallery picture with its caption; a placeholder until its data arrives. */
export function thumb(src: string | undefined, caption: string, kind: string): HTMLElement {
  const img = src ? el('img', { src, alt: caption, class: kind, loading: 'lazy', decoding: 'async' }) : el('div', { class: `ph ${kind}`, 'aria-label': `${caption} (loading)` });
  return el('figure', {}, img, el('figcaption', { text: caption }));
}

/**
 * Asks for a gallery card's pictures once it comes near the viewport: cards carry `data-path`;
 * each path is asked for once (until `requested` is cleared), in batches through `ask`.
 */
export function lazyImageRequests(requested: Set<string>, ask: (paths: string[]) => void): IntersectionObserver {
  const observer = new IntersectionObserver(
    (entries) => {
      const want: string[] = [];
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        const path = (e.target as HTMLElement).dataset.path!;
        if (!requested.has(path)) {
          requested.add(path);
          want.push(path);
        }
        observer.unobserve(e.target);
      }
      if (want.length) ask(want);
    },
    { rootMargin: '600px 0px' },
  );
  return observer;
}

/** A theme colour (CSS variable VS Code sets on the webview body). */
export function themeColor(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(`--vscode-${name}`).trim();
  return v || fallback;
}

export function fmt(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits);
}

export function basename(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i >= 0 ? p.slice(i + 1) : p;
}

export const baseCss = `
  body { color: var(--vscode-foreground); background: var(--vscode-editor-background); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); padding: 0 16px 16px; }
  h1, h2, h3 { font-weight: 600; }
  h1 { font-size: 1.4em; margin: 12px 0 4px; }
  h2 { font-size: 1.15em; margin: 18px 0 8px; }
  .muted { color: var(--vscode-descriptionForeground); }
  .error { color: var(--vscode-errorForeground); }
  table { border-collapse: collapse; }
  th, td { padding: 4px 10px; text-align: right; border-bottom: 1px solid var(--vscode-editorWidget-border, var(--vscode-panel-border)); }
  th:first-child, td:first-child { text-align: left; }
  th { color: var(--vscode-descriptionForeground); font-weight: 600; }
  :focus-visible { outline: 1px solid var(--vscode-focusBorder); outline-offset: 1px; }
  .row { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
  .chart { position: relative; height: 260px; }
`;

// ---------------------------------------------------------------------------------------------
// Toolkit components and Chart.js with theme colours

let registered = false;
export function registerToolkit(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(
    vsCodeBadge(),
    vsCodeButton(),
    vsCodeCheckbox(),
    vsCodeDivider(),
    vsCodeDropdown(),
    vsCodeOption(),
    vsCodeProgressRing(),
    vsCodeTag(),
    vsCodeTextField(),
  );
}

let chartsRegistered = false;
/** Chart.js components of the curves (only the views with charts call it, so the image view's bundle has no Chart.js). */
export function registerCharts(): void {
  if (chartsRegistered) return;
  chartsRegistered = true;
  Chart.register(LineController, ScatterController, LineElement, PointElement, LinearScale, CategoryScale, Legend, Tooltip, Filler);
  chartDefaults();
}

export { Chart };

export function chartPalette(): string[] {
  return [
    themeColor('charts-blue', '#3794ff'),
    themeColor('charts-orange', '#d18616'),
    themeColor('charts-green', '#89d185'),
    themeColor('charts-purple', '#b180d7'),
    themeColor('charts-red', '#f14c4c'),
    themeColor('charts-yellow', '#cca700'),
  ];
}

/** Common options: theme colours for text and grid, no animation (live updates). */
export function chartDefaults(): void {
  Chart.defaults.color = themeColor('charts-foreground', themeColor('foreground', '#cccccc'));
  Chart.defaults.borderColor = themeColor('charts-lines', 'rgba(128,128,128,0.3)');
  Chart.defaults.font.family = getComputedStyle(document.body).getPropertyValue('--vscode-font-family') || 'sans-serif';
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
}

/** [height, width] of an evaluation's maps (older evaluations: targetSize × targetSize). */
export function evaluationMapShape(ev: Pick<Evaluation, 'targetSize' | 'targetShape'>): [number, number] {
  return ev.targetShape ?? [ev.targetSize, ev.targetSize];
}

/** [height, width] of a prediction's raw maps (older daemons: mapSize × mapSize). */
export function predictionMapShape(p: Pick<Prediction, 'mapSize' | 'mapShape'>): [number, number] {
  return p.mapShape ?? [p.mapSize, p.mapSize];
}

/** Makes the thumbnails (CSS `aspect-ratio: var(--map-aspect)`) take the maps' shape: width / height. */
export function setMapAspect(shape: readonly [number, number]): void {
  document.documentElement.style.setProperty('--map-aspect', `${shape[1]} / ${shape[0]}`);
}
