/**
 * The Results view of one evaluated run: metrics per category and defect type, ROC / pixel ROC /
 * PRO curves, and a gallery of every test image with its heatmap, −log NFA map, NFA segmentation
 * and ground truth side by side — sortable by score, filterable by defect type and by outcome
 * (correct / missed / false alarm) at a log NFA threshold that starts at 0.
 * Images are asked from the extension lazily, for the cards that scroll into view.
 */
import type { Chart as ChartType } from 'chart.js';
import type { CurvePoint, Evaluation, ImageResult, MetricSet, RunInfo } from '../server/protocol.js';
import {
  evaluationMapShape,
  setMapAspect,
  addStyles,
  baseCss,
  basename,
  Chart,
  chartPalette,
  el,
  fmt,
  lazyImageRequests,
  registerCharts,
  registerToolkit,
  thumb,
  vscodeApi,
  type GalleryImages,
  type ResultsFromWebview,
  type ResultsState,
  type ResultsToWebview,
} from './shared.js';

registerToolkit();
registerCharts();
const vscode = vscodeApi<ResultsState>();
addStyles(`${baseCss}
  .meta { color: var(--vscode-descriptionForeground); margin: 0 0 8px; }
  #metrics td, #metrics th { font-variant-numeric: tabular-nums; }
  #metrics tr.overall td { font-weight: 600; }
  .controls { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-end; margin: 8px 0 12px; }
  .controls label { display: flex; flex-direction: column; gap: 4px; color: var(--vscode-descriptionForeground); }
  .threshold input[type=range] { width: 220px; accent-color: var(--vscode-button-background); }
  .threshold output { font-variant-numeric: tabular-nums; color: var(--vscode-foreground); }
  .counts { color: var(--vscode-descriptionForeground); }
  #gallery { display: flex; flex-direction: column; gap: 8px; }
  .card { display: grid; grid-template-columns: 220px repeat(5, minmax(96px, 150px)); gap: 8px; align-items: start; padding: 8px; border: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,.35)); border-radius: 4px; cursor: pointer; }
  .card:hover { background: var(--vscode-list-hoverBackground); }
  .card:focus-visible { outline: 1px solid var(--vscode-focusBorder); }
  .card .info { display: flex; flex-direction: column; gap: 4px; overflow: hidden; }
  .card .name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .card .score { font-variant-numeric: tabular-nums; }
  figure { margin: 0; display: flex; flex-direction: column; gap: 2px; }
  figure img, figure .ph { width: 100%; aspect-ratio: var(--map-aspect, 1); object-fit: contain; background: var(--vscode-editorWidget-background, rgba(128,128,128,.1)); image-rendering: auto; }
  figcaption { font-size: 0.85em; color: var(--vscode-descriptionForeground); text-align: center; }
  .outcome-correct { color: var(--vscode-charts-green); }
  .outcome-missed { color: var(--vscode-errorForeground); }
  .outcome-false-alarm { color: var(--vscode-charts-orange); }
  .tag { display: inline-block; padding: 0 6px; border-radius: 8px; background: var(--vscode-badge-background); color: var(--vscode-badge-foreground); font-size: 0.85em; }
`);

type Outcome = 'correct' | 'missed' | 'false-alarm';
const state: ResultsState = { sort: 'score-desc', defect: 'all', outcome: 'all', threshold: 0, ...(vscode.getState() ?? {}) };
let evaluation: Evaluation | undefined;
let run: RunInfo | undefined;
const images = new Map<string, GalleryImages>();
const requested = new Set<string>();
const charts: ChartType[] = [];
const app = document.getElementById('app')!;

function post(m: ResultsFromWebview): void {
  vscode.postMessage(m);
}
function save(): void {
  vscode.setState({ ...state, runId: run?.runId ?? evaluation?.runId });
}

/** log NFA < threshold somewhere ⇔ max −log NFA > −threshold. */
function flagged(i: ImageResult): boolean {
  return i.maxNegLogNfa > -(state.threshold ?? 0);
}
function outcome(i: ImageResult): Outcome {
  const f = flagged(i);
  if (i.label === 1) return f ? 'correct' : 'missed';
  return f ? 'false-alarm' : 'correct';
}

// ---------------------------------------------------------------------------------------------
// Layout

function renderAll(): void {
  const ev = evaluation!;
  const [mh, mw] = evaluationMapShape(ev);
  setMapAspect([mh, mw]);
  app.removeAttribute('aria-busy');
  app.replaceChildren();
  const reeval = el('vscode-button' as 'button', { id: 'reevaluate', appearance: 'secondary' }, 'Re-evaluate');
  reeval.addEventListener('click', () => post({ type: 'reevaluate' }));
  app.append(
    el('div', { class: 'row' }, el('h1', { text: `${ev.category} · ${ev.model}` }), reeval),
    el('p', {
      class: 'meta',
      text: `run ${ev.runId} · evaluated ${new Date(ev.evaluatedAt).toLocaleString()} · ${ev.images.length} test images · maps at ${mh === mw ? `${mw}px` : `${mh}×${mw}px`}${ev.highPrecision ? ' · high precision' : ''}${run ? ` · ${run.engine?.backend ?? ''}` : ''}`,
    }),
    el('h2', { text: 'Metrics' }),
    metricsTable(ev),
    el('p', { class: 'muted', text: 'mIoU of the NFA segmentation at log NFA = 0; AUPRO integrated up to 30% false positive rate.' }),
    el('h2', { text: 'Curves' }),
    curves(ev),
    el('h2', { text: 'Test images' }),
    galleryControls(ev),
    el('div', { id: 'gallery', role: 'list' }),
  );
  renderGallery();
  if (state.scrollY) requestAnimationFrame(() => window.scrollTo(0, state.scrollY!));
}

function metricsTable(ev: Evaluation): HTMLElement {
  const head = el('tr', {}, ...['', 'images', 'image AUROC', 'pixel AUROC', 'AUPRO', 'mIoU'].map((h) => el('th', { scope: 'col', text: h })));
  const row = (name: string, m: MetricSet, cls = '') =>
    el(
      'tr',
      { class: cls },
      el('th', { scope: 'row', text: name }),
      el('td', { text: String(m.images) }),
      el('td', { text: fmt(m.image_auroc) }),
      el('td', { text: fmt(m.pixel_auroc) }),
      el('td', { text: fmt(m.aupro) }),
      el('td', { text: fmt(m.miou) }),
    );
  const rows = [row(`${ev.category} (all)`, ev.overall, 'overall')];
  for (const [d, m] of Object.entries(ev.perDefect).sort(([a], [b]) => a.localeCompare(b))) rows.push(row(`  ${d}`, m));
  return el('table', { id: 'metrics', 'aria-label': 'Metrics per category and defect type' }, el('thead', {}, head), el('tbody', {}, ...rows));
}

function thin(points: CurvePoint[], max = 600): CurvePoint[] {
  if (points.length <= max) return points;
  const step = points.length / max;
  const out: CurvePoint[] = [];
  for (let i = 0; i < max; i++) out.push(points[Math.floor(i * step)]!);
  out.push(points[points.length - 1]!);
  return out;
}

function curves(ev: Evaluation): HTMLElement {
  for (const c of charts) c.destroy();
  charts.length = 0;
  const colors = chartPalette();
  const box = el('section', { class: 'charts' });
  const specs: Array<[string, CurvePoint[], string, string, string, number | null]> = [
    ['Image ROC', ev.curves.roc, 'false positive rate', 'true positive rate', 'roc-chart', ev.overall.image_auroc],
    ['Pixel ROC', ev.curves.pixelRoc, 'false positive rate', 'true positive rate', 'pixel-roc-chart', ev.overall.pixel_auroc],
    ['PRO', ev.curves.pro, 'false positive rate', 'per-region overlap', 'pro-chart', ev.overall.aupro],
  ];
  specs.forEach(([name, pts, xl, yl, id, area], i) => {
    if (!pts?.length) return;
    const canvas = el('canvas', { id, role: 'img', 'aria-label': `${name} curve, area ${fmt(area)}` });
    box.append(el('div', {}, el('h3', { text: `${name} (area ${fmt(area)})` }), el('div', { class: 'chart' }, canvas)));
    requestAnimationFrame(() => {
      charts.push(
        new Chart(canvas, {
          type: 'scatter',
          data: { datasets: [{ label: name, data: thin(pts), showLine: true, pointRadius: 0, borderColor: colors[i], backgroundColor: colors[i], borderWidth: 2 }] },
          options: {
            scales: { x: { min: 0, max: name === 'PRO' ? Math.max(0.3, Math.min(1, Math.max(...pts.map((p) => p.x)))) : 1, title: { display: true, text: xl } }, y: { min: 0, max: 1, title: { display: true, text: yl } } },
            plugins: { legend: { display: false } },
          },
        }),
      );
    });
  });
  return box;
}

function dropdown(id: string, label: string, options: Array<[string, string]>, value: string, onChange: (v: string) => void): HTMLElement {
  const dd = document.createElement('vscode-dropdown') as HTMLElement & { value: string };
  dd.id = id;
  dd.setAttribute('aria-label', label);
  for (const [v, text] of options) {
    const o = document.createElement('vscode-option');
    o.setAttribute('value', v);
    o.textContent = text;
    if (v === value) o.setAttribute('selected', '');
    dd.append(o);
  }
  dd.addEventListener('change', () => onChange(dd.value));
  return el('label', {}, label, dd);
}

let countsEl: HTMLElement;
function galleryControls(ev: Evaluation): HTMLElement {
  const defects = [...new Set(ev.images.map((i) => i.defect))].sort();
  const range = el('input', { type: 'range', id: 'threshold', min: -30, max: 10, step: 0.5, value: state.threshold ?? 0, 'aria-label': 'log NFA threshold' });
  const out = el('output', { for: 'threshold', text: (state.threshold ?? 0).toFixed(1) });
  range.addEventListener('input', () => {
    state.threshold = Number(range.value);
    out.textContent = state.threshold.toFixed(1);
    save();
    renderGallery();
  });
  const reset = el('vscode-button' as 'button', { appearance: 'icon', 'aria-label': 'Reset the threshold to log NFA = 0', title: 'Reset to 0' }, '↺');
  reset.addEventListener('click', () => {
    state.threshold = 0;
    range.value = '0';
    out.textContent = '0.0';
    save();
    renderGallery();
  });
  countsEl = el('span', { class: 'counts', id: 'counts', 'aria-live': 'polite' });
  evidenceEl = el('div', { class: 'evidence', id: 'threshold-evidence', 'aria-live': 'polite' });
  const t = ev.threshold;
  const mark = t ? el('span', { class: 'calibrated-mark', title: t.calibration.description }, `automatic: log NFA < ${(-t.automatic).toFixed(1)} (${t.variant === 'calibrated' ? 'calibrated' : `paper’s ${t.variant}`})`) : el('span', {});
  return el(
    'div',
    { class: 'controls' },
    dropdown('sort', 'Sort', [['score-desc', 'score, highest first'], ['score-asc', 'score, lowest first'], ['name', 'name']], state.sort!, (v) => {
      state.sort = v as ResultsState['sort'];
      save();
      renderGallery();
    }),
    dropdown('defect', 'Defect type', [['all', 'all'], ...defects.map((d): [string, string] => [d, d])], state.defect!, (v) => {
      state.defect = v;
      save();
      renderGallery();
    }),
    dropdown('outcome', 'Outcome', [['all', 'all'], ['correct', 'correct'], ['missed', 'missed'], ['false-alarm', 'false alarm']], state.outcome!, (v) => {
      state.outcome = v as ResultsState['outcome'];
      save();
      renderGallery();
    }),
    el('label', { class: 'threshold' }, 'log NFA threshold (flag when log NFA < t)', el('div', { class: 'row' }, range, out, reset), mark),
    countsEl,
    evidenceEl,
  );
}

let evidenceEl: HTMLElement;

/** The curve value at a −log NFA threshold (the nearest point at or below it). */
function curveAt(values: number[], thresholds: number[], negThr: number): number | undefined {
  let k = -1;
  for (let i = 0; i < thresholds.length; i++) if (thresholds[i]! <= negThr + 1e-9) k = i;
  return k < 0 ? undefined : values[k];
}

/** False alarms per good image and mIoU at the slider's threshold (from evaluation.json's curve). */
function renderEvidence(): void {
  const t = evaluation?.threshold;
  if (!evidenceEl) return;
  if (!t) {
    evidenceEl.textContent = '';
    return;
  }
  const negThr = -(state.threshold ?? 0);
  const fa = curveAt(t.curve.falseAlarms, t.curve.thresholds, negThr);
  const miou = curveAt(t.curve.miou, t.curve.thresholds, negThr);
  const pix = curveAt(t.curve.goodPixelFraction, t.curve.thresholds, negThr);
  const o = t.miou.oracle;
  evidenceEl.textContent =
    `at this threshold: ${fa === undefined ? '–' : fa.toFixed(2)} false alarms per good image, ${pix === undefined ? '–' : (100 * pix).toFixed(2)} % of good pixels flagged, mIoU ${miou === undefined ? '–' : miou.toFixed(3)}` +
    (o ? ` · oracle mIoU ${o.miou.toFixed(3)} ${o.detectsNothing ? '(detecting nothing is best: no threshold separates these defects with this model)' : `at log NFA < ${(-o.threshold).toFixed(0)}`}` : '') +
    (t.falseAlarms.holdout ? ` · held-out normal images: ${t.falseAlarms.holdout.meanRegions.toFixed(2)} false alarms each at the automatic threshold` : '');
}

// ---------------------------------------------------------------------------------------------
// Gallery

const observer = lazyImageRequests(requested, (paths) => post({ type: 'needImages', paths }));

function visibleImages(): ImageResult[] {
  const ev = evaluation!;
  let list = ev.images.filter((i) => (state.defect === 'all' || i.defect === state.defect) && (state.outcome === 'all' || outcome(i) === state.outcome));
  const byName = (a: ImageResult, b: ImageResult) => a.path.localeCompare(b.path);
  if (state.sort === 'score-asc') list = list.sort((a, b) => a.score - b.score || byName(a, b));
  else if (state.sort === 'name') list = list.sort(byName);
  else list = list.sort((a, b) => b.score - a.score || byName(a, b));
  return list;
}

function renderGallery(): void {
  const gallery = document.getElementById('gallery');
  if (!gallery || !evaluation) return;
  const ev = evaluation;
  renderEvidence();
  const all = ev.images.map(outcome);
  const n = (o: Outcome) => all.filter((x) => x === o).length;
  countsEl.textContent = `${n('correct')} correct · ${n('missed')} missed · ${n('false-alarm')} false alarms (of ${ev.images.length})`;
  const list = visibleImages();
  observer.disconnect();
  gallery.replaceChildren(...list.map(card));
  if (!list.length) gallery.append(el('p', { class: 'muted', text: 'No test image matches these filters.' }));
  gallery.querySelectorAll<HTMLElement>('.card').forEach((c) => {
    if (!requested.has(c.dataset.path!)) observer.observe(c);
  });
}

function card(i: ImageResult): HTMLElement {
  const o = outcome(i);
  const g = images.get(i.path) ?? {};
  const c = el(
    'div',
    {
      class: `card outcome-${o}-card`,
      role: 'listitem',
      tabindex: 0,
      'data-path': i.path,
      'data-score': i.score,
      'data-outcome': o,
      'aria-label': `${basename(i.path)}, ${i.defect}, score ${i.score.toFixed(3)}, ${o.replace('-', ' ')}. Enter opens it in the U-Flow Image View.`,
    },
    el(
      'div',
      { class: 'info' },
      el('span', { class: 'name', text: basename(i.path), title: i.path }),
      el('span', {}, el('span', { class: 'tag', text: i.defect })),
      el('span', { class: 'score', text: `score ${i.score.toFixed(3)}` }),
      el('span', { class: 'score', text: `max −log NFA ${i.maxNegLogNfa.toFixed(2)}` }),
      el('span', { class: 'regions', text: i.regions ? (i.regions.length ? `${i.regions.length} region${i.regions.length > 1 ? 's' : ''}: −log NFA ${i.regions.slice(0, 3).map((r) => r.maxNegLogNfa.toFixed(1)).join(', ')}` : 'no region detected') : '' }),
      i.label === 1 ? el('span', { class: 'score', text: `IoU ${fmt(i.iou, 2)}` }) : undefined,
      el('span', { class: `outcome outcome-${o}`, text: o === 'false-alarm' ? 'false alarm' : o }),
      g.error ? el('span', { class: 'error', text: g.error }) : undefined,
    ),
    thumb(g.image, 'image', 'img-image'),
    thumb(g.anomaly, 'heatmap', 'img-heatmap'),
    thumb(g.nfa, '−log NFA', 'img-nfa'),
    thumb(g.segmentation, 'NFA segmentation', 'img-seg'),
    i.label === 1 || i.maskPath ? thumb(g.mask, 'ground truth', 'img-gt') : el('figure', {}, el('div', { class: 'ph' }), el('figcaption', { text: 'good: no defect' })),
  );
  const open = () => post({ type: 'openImage', path: i.path });
  c.addEventListener('dblclick', open);
  c.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      open();
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const sib = (e.key === 'ArrowDown' ? c.nextElementSibling : c.previousElementSibling) as HTMLElement | null;
      sib?.focus();
    }
  });
  return c;
}

function applyImages(batch: Record<string, GalleryImages>): void {
  for (const [path, g] of Object.entries(batch)) {
    images.set(path, g);
    const old = document.querySelector<HTMLElement>(`.card[data-path="${CSS.escape(path)}"]`);
    if (!old || !evaluation) continue;
    const r = evaluation.images.find((x) => x.path === path);
    if (!r) continue;
    const focused = document.activeElement === old;
    const fresh = card(r);
    old.replaceWith(fresh);
    if (focused) fresh.focus();
  }
}

let scrollTimer: number | undefined;
window.addEventListener('scroll', () => {
  clearTimeout(scrollTimer);
  scrollTimer = window.setTimeout(() => {
    state.scrollY = window.scrollY;
    save();
  }, 200);
});

window.addEventListener('message', (ev: MessageEvent<ResultsToWebview>) => {
  const m = ev.data;
  if (m.type === 'evaluation') {
    evaluation = m.evaluation;
    run = m.run;
    // New or re-computed maps: ask again for the images shown.
    images.clear();
    requested.clear();
    if (state.runId && state.runId !== m.evaluation.runId) {
      state.defect = 'all';
      state.outcome = 'all';
      state.scrollY = 0;
    }
    save();
    document.title = m.title;
    renderAll();
  } else if (m.type === 'images') {
    applyImages(m.images);
  } else if (m.type === 'error') {
    app.replaceChildren(el('p', { class: 'error', text: m.message }));
  }
});

post({ type: 'ready' });
