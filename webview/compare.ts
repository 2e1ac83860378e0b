/**
 * The Compare view: two evaluated runs of the same dataset side by side — a metrics table with one
 * column per run and their difference (overall and per defect type), and a gallery where each test
 * image (matched by path) shows run A's heatmap beside run B's, with both scores.
 * Images are asked from the extension lazily, for the cards that scroll into view.
 */
import type { ImageResult, MetricSet } from '../server/protocol.js';
import {
  evaluationMapShape,
  setMapAspect,
  addStyles,
  baseCss,
  basename,
  el,
  fmt,
  lazyImageRequests,
  registerToolkit,
  thumb,
  vscodeApi,
  type CompareFromWebview,
  type ComparePair,
  type CompareSide,
  type CompareToWebview,
} from './shared.js';

registerToolkit();
const vscode = vscodeApi<{ scrollY?: number }>();
addStyles(`${baseCss}
  .meta { color: var(--vscode-descriptionForeground); margin: 0 0 4px; }
  #metrics td, #metrics th { font-variant-numeric: tabular-nums; }
  #metrics tr.scope th { padding-top: 10px; }
  .better { color: var(--vscode-charts-green); }
  .worse { color: var(--vscode-errorForeground); }
  #gallery { display: flex; flex-direction: column; gap: 8px; }
  .card { display: grid; grid-template-columns: 220px repeat(4, minmax(96px, 150px)); gap: 8px; align-items: start; padding: 8px; border: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,.35)); border-radius: 4px; cursor: pointer; }
  .card:hover { background: var(--vscode-list-hoverBackground); }
  .card .info { display: flex; flex-direction: column; gap: 4px; overflow: hidden; }
  .card .name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .card .score { font-variant-numeric: tabular-nums; }
  figure { margin: 0; display: flex; flex-direction: column; gap: 2px; }
  figure img, figure .ph { width: 100%; aspect-ratio: var(--map-aspect, 1); object-fit: contain; background: var(--vscode-editorWidget-background, rgba(128,128,128,.1)); }
  figcaption { font-size: 0.85em; color: var(--vscode-descriptionForeground); text-align: center; }
  .tag { display: inline-block; padding: 0 6px; border-radius: 8px; background: var(--vscode-badge-background); color: var(--vscode-badge-foreground); font-size: 0.85em; }
`);

let A: CompareSide | undefined;
let B: CompareSide | undefined;
const images = new Map<string, ComparePair>();
const requested = new Set<string>();
const app = document.getElementById('app')!;

function post(m: CompareFromWebview): void {
  vscode.postMessage(m);
}

const sideName = (s: CompareSide, tag: string) => `${tag}: ${s.run.model} · ${s.run.runId}`;

// ---------------------------------------------------------------------------------------------
// Metrics

const METRICS: Array<[keyof MetricSet, string]> = [
  ['image_auroc', 'image AUROC'],
  ['pixel_auroc', 'pixel AUROC'],
  ['aupro', 'AUPRO'],
  ['miou', 'mIoU'],
];

function delta(a: number | null | undefined, b: number | null | undefined): HTMLElement {
  if (a === null || a === undefined || b === null || b === undefined) return el('td', { text: '–' });
  const d = b - a;
  return el('td', { class: d > 0 ? 'better' : d < 0 ? 'worse' : '', text: `${d > 0 ? '+' : ''}${d.toFixed(3)}` });
}

function metricsTable(a: CompareSide, b: CompareSide): HTMLElement {
  const head = el('tr', {}, ...['', '', 'A', 'B', 'B − A'].map((h) => el('th', { scope: 'col', text: h })));
  const rows: HTMLElement[] = [];
  const scope = (name: string, ma: MetricSet | undefined, mb: MetricSet | undefined) => {
    METRICS.forEach(([k, label], i) => {
      const va = ma?.[k] as number | null | undefined;
      const vb = mb?.[k] as number | null | undefined;
      rows.push(
        el(
          'tr',
          { class: i === 0 ? 'scope' : '' },
          el('th', { scope: 'row', text: i === 0 ? name : '' }),
          el('td', { text: label }),
          el('td', { text: fmt(va) }),
          el('td', { text: fmt(vb) }),
          delta(va, vb),
        ),
      );
    });
  };
  scope(`${a.evaluation.category} (all)`, a.evaluation.overall, b.evaluation.overall);
  const defects = [...new Set([...Object.keys(a.evaluation.perDefect), ...Object.keys(b.evaluation.perDefect)])].sort();
  for (const d of defects) scope(d, a.evaluation.perDefect[d], b.evaluation.perDefect[d]);
  return el('table', { id: 'metrics', 'aria-label': 'Metrics of both runs per category and defect type' }, el('thead', {}, head), el('tbody', {}, ...rows));
}

// ---------------------------------------------------------------------------------------------
// Gallery

interface Row {
  path: string;
  a?: ImageResult;
  b?: ImageResult;
}

function rows(): Row[] {
  const byPath = new Map<string, Row>();
  for (const i of A!.evaluation.images) byPath.set(i.path, { path: i.path, a: i });
  for (const i of B!.evaluation.images) byPath.set(i.path, { ...(byPath.get(i.path) ?? { path: i.path }), b: i });
  const defect = (r: Row) => (r.a ?? r.b)!.defect;
  return [...byPath.values()].sort((x, y) => defect(x).localeCompare(defect(y)) || x.path.localeCompare(y.path));
}

const observer = lazyImageRequests(requested, (paths) => post({ type: 'needImages', paths }));

function card(r: Row): HTMLElement {
  const any = (r.a ?? r.b)!;
  const g = images.get(r.path) ?? {};
  const score = (tag: string, i: ImageResult | undefined) => el('span', { class: 'score', text: `${tag} score ${i ? i.score.toFixed(3) : '–'} · max −log NFA ${i ? i.maxNegLogNfa.toFixed(2) : '–'}` });
  const c = el(
    'div',
    {
      class: 'card',
      role: 'listitem',
      tabindex: 0,
      'data-path': r.path,
      'aria-label': `${basename(r.path)}, ${any.defect}, score A ${r.a?.score.toFixed(3) ?? 'none'}, score B ${r.b?.score.toFixed(3) ?? 'none'}. Enter opens it in the U-Flow Image View.`,
    },
    el(
      'div',
      { class: 'info' },
      el('span', { class: 'name', text: basename(r.path), title: r.path }),
      el('span', {}, el('span', { class: 'tag', text: any.defect })),
      score('A', r.a),
      score('B', r.b),
      g.a?.error ? el('span', { class: 'error', text: `A: ${g.a.error}` }) : undefined,
      g.b?.error ? el('span', { class: 'error', text: `B: ${g.b.error}` }) : undefined,
    ),
    thumb(g.image, 'image', 'img-image'),
    thumb(g.a?.anomaly, `A heatmap (${A!.run.model})`, 'img-heatmap-a'),
    thumb(g.b?.anomaly, `B heatmap (${B!.run.model})`, 'img-heatmap-b'),
    any.label === 1 || any.maskPath ? thumb(g.mask, 'ground truth', 'img-gt') : el('figure', {}, el('div', { class: 'ph' }), el('figcaption', { text: 'good: no defect' })),
  );
  const open = () => post({ type: 'openImage', path: r.path });
  c.addEventListener('dblclick', open);
  c.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      open();
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      ((e.key === 'ArrowDown' ? c.nextElementSibling : c.previousElementSibling) as HTMLElement | null)?.focus();
    }
  });
  return c;
}

function renderAll(): void {
  const a = A!;
  const b = B!;
  setMapAspect(evaluationMapShape(a.evaluation));
  app.removeAttribute('aria-busy');
  const list = rows();
  const gallery = el('div', { id: 'gallery', role: 'list' }, ...list.map(card));
  app.replaceChildren(
    el('h1', { text: `${a.evaluation.category} · ${a.run.model} vs ${b.run.model}` }),
    el('p', { class: 'meta', text: `${sideName(a, 'A')} · evaluated ${new Date(a.evaluation.evaluatedAt).toLocaleString()}` }),
    el('p', { class: 'meta', text: `${sideName(b, 'B')} · evaluated ${new Date(b.evaluation.evaluatedAt).toLocaleString()}` }),
    el('p', { class: 'meta', text: `dataset ${a.evaluation.datasetPath} · ${list.length} test images` }),
    el('h2', { text: 'Metrics' }),
    metricsTable(a, b),
    el('p', { class: 'muted', text: 'mIoU of the NFA segmentation at log NFA = 0; AUPRO integrated up to 30% false positive rate. Scores of different models are on different scales.' }),
    el('h2', { text: 'Test images' }),
    gallery,
  );
  observer.disconnect();
  gallery.querySelectorAll<HTMLElement>('.card').forEach((c) => observer.observe(c));
  const y = vscode.getState()?.scrollY;
  if (y) requestAnimationFrame(() => window.scrollTo(0, y));
}

function applyImages(batch: Record<string, ComparePair>): void {
  const byPath = new Map(rows().map((r) => [r.path, r]));
  for (const [path, g] of Object.entries(batch)) {
    images.set(path, g);
    const old = document.querySelector<HTMLElement>(`.card[data-path="${CSS.escape(path)}"]`);
    const r = byPath.get(path);
    if (!old || !r) continue;
    const focused = document.activeElement === old;
    const fresh = card(r);
    old.replaceWith(fresh);
    if (focused) fresh.focus();
  }
}

let scrollTimer: number | undefined;
window.addEventListener('scroll', () => {
  clearTimeout(scrollTimer);
  scrollTimer = window.setTimeout(() => vscode.setState({ scrollY: window.scrollY }), 200);
});

window.addEventListener('message', (ev: MessageEvent<CompareToWebview>) => {
  const m = ev.data;
  if (m.type === 'compare') {
    A = m.a;
    B = m.b;
    images.clear();
    requested.clear();
    document.title = m.title;
    renderAll();
  } else if (m.type === 'images') {
    applyImages(m.images);
  }
});

post({ type: 'ready' });
