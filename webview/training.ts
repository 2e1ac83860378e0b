/**
 * The Training view: live loss and validation curves of a run, epoch progress, images/s, ETA and
 * a Cancel button. Data comes from the extension (uflow/trainingUpdate, metrics.jsonl).
 */
import type { Chart as ChartType } from 'chart.js';
import {
  addStyles,
  baseCss,
  Chart,
  chartPalette,
  el,
  fmt,
  registerCharts,
  registerToolkit,
  vscodeApi,
  type TrainingFromWebview,
  type TrainingRunView,
  type TrainingState,
  type TrainingToWebview,
} from './shared.js';

registerToolkit();
registerCharts();
const vscode = vscodeApi<TrainingState>();
addStyles(`${baseCss}
  .summary { display: grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr)); gap: 8px 16px; margin: 12px 0; }
  .stat { display: flex; flex-direction: column; }
  .stat .v { font-size: 1.35em; font-variant-numeric: tabular-nums; }
  .stat .k { color: var(--vscode-descriptionForeground); font-size: 0.9em; }
  .bar { height: 4px; background: var(--vscode-editorWidget-border, rgba(128,128,128,.3)); margin: 4px 0 12px; }
  .bar > div { height: 100%; background: var(--vscode-progressBar-background); }
  .state-running { color: var(--vscode-charts-blue); }
  .state-finished { color: var(--vscode-charts-green); }
  .state-failed, .state-interrupted { color: var(--vscode-errorForeground); }
  #message { min-height: 1.4em; }
`);

const runs = new Map<string, TrainingRunView>();
let selected: string | undefined = vscode.getState()?.selected;
let lossChart: ChartType | undefined;
let valChart: ChartType | undefined;

const app = document.getElementById('app')!;
app.removeAttribute('aria-busy');
app.replaceChildren();
const header = el('div', { class: 'row' });
const title = el('h1', { text: 'U-Flow Training' });
const picker = document.createElement('vscode-dropdown') as HTMLElement & { value: string };
picker.setAttribute('aria-label', 'Run');
picker.id = 'run-picker';
const cancelBtn = el('vscode-button' as 'button', { id: 'cancel', appearance: 'secondary', 'aria-label': 'Cancel training' }, 'Cancel');
const evalBtn = el('vscode-button' as 'button', { id: 'evaluate', 'aria-label': 'Evaluate this run' }, 'Evaluate');
header.append(title, picker, cancelBtn, evalBtn);
const bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, el('div'));
const summary = el('section', { class: 'summary', 'aria-live': 'polite' });
const message = el('p', { id: 'message', class: 'muted' });
const lossCanvas = el('canvas', { id: 'loss-chart', role: 'img', 'aria-label': 'Training loss per epoch' });
const valCanvas = el('canvas', { id: 'val-chart', role: 'img', 'aria-label': 'Validation metrics per epoch' });
const charts = el(
  'section',
  { class: 'charts' },
  el('div', {}, el('h2', { text: 'Loss' }), el('div', { class: 'chart' }, lossCanvas)),
  el('div', {}, el('h2', { text: 'Validation' }), el('div', { class: 'chart' }, valCanvas)),
);
const empty = el('p', { class: 'muted', id: 'empty', text: 'No training yet. Right-click a dataset folder in the Explorer and choose Train U-Flow.' });
app.append(header, bar, summary, message, charts, empty);

picker.addEventListener('change', () => {
  select(picker.value);
  post({ type: 'select', runId: picker.value });
});
cancelBtn.addEventListener('click', () => {
  const r = selected ? runs.get(selected) : undefined;
  if (r?.jobId) post({ type: 'cancel', jobId: r.jobId });
});
evalBtn.addEventListener('click', () => {
  if (selected) post({ type: 'evaluate', runId: selected });
});

function post(m: TrainingFromWebview): void {
  vscode.postMessage(m);
}

function select(runId: string | undefined): void {
  selected = runId;
  vscode.setState({ selected });
  render(true);
}

function renderPicker(): void {
  const opts = [...runs.values()].reverse();
  picker.replaceChildren(
    ...opts.map((r) => {
      const o = document.createElement('vscode-option');
      o.setAttribute('value', r.runId);
      o.textContent = `${r.category} · ${r.model} · ${r.state} — ${r.runId}`;
      if (r.runId === selected) o.setAttribute('selected', '');
      return o;
    }),
  );
  if (selected) picker.value = selected;
  picker.hidden = opts.length === 0;
}

function stat(k: string, v: string, cls = ''): HTMLElement {
  return el('div', { class: 'stat' }, el('span', { class: `v ${cls}`, text: v }), el('span', { class: 'k', text: k }));
}

function eta(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '–';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function render(rebuildCharts = false): void {
  const r = selected ? runs.get(selected) : undefined;
  empty.hidden = runs.size > 0;
  charts.hidden = !r;
  summary.hidden = !r;
  bar.hidden = !r;
  cancelBtn.hidden = !(r && (r.state === 'running' || r.state === 'queued') && r.jobId);
  evalBtn.hidden = !(r && r.state !== 'running' && r.state !== 'queued' && r.points.length > 0);
  if (!r) return;
  const u = r.last;
  const epoch = u?.epoch ?? r.points[r.points.length - 1]?.epoch ?? 0;
  const epochs = u?.epochs ?? r.epochs;
  const frac = epochs ? Math.min(1, (Math.max(0, epoch - 1) + (u?.steps ? u.step / u.steps : 1)) / epochs) : 0;
  const pct = r.state === 'finished' ? 100 : Math.round(frac * 100);
  (bar.firstChild as HTMLElement).style.width = `${pct}%`;
  bar.setAttribute('aria-valuenow', String(pct));
  const lastPoint = r.points[r.points.length - 1];
  const best = u?.best ?? bestOf(r);
  summary.replaceChildren(
    stat('state', r.state + (u?.phase && r.state === 'running' ? ` (${u.phase})` : ''), `state-${r.state}`),
    stat('epoch', `${epoch} / ${epochs}`),
    stat('loss', fmt(u?.loss ?? lastPoint?.loss, 3)),
    stat('images / s', fmt(u?.imagesPerSecond ?? lastPoint?.imagesPerSecond, 1)),
    stat('time left', r.state === 'running' ? eta(u?.etaSeconds) : '–'),
    stat('best pixel AUROC', fmt(best?.pixel_auroc)),
    stat('best AUPRO', fmt(best?.aupro)),
    stat('best image AUROC', fmt(best?.image_auroc)),
  );
  summary.dataset.epoch = String(epoch);
  summary.dataset.state = r.state;
  message.textContent = r.message ?? (u?.phase === 'features' ? `Extracting backbone features… ${u.step}/${u.steps}` : '');
  updateCharts(r, rebuildCharts);
}

function bestOf(r: TrainingRunView): Record<string, number> {
  const b: Record<string, number> = {};
  for (const p of r.points) for (const [k, v] of Object.entries(p.metrics ?? {})) if (typeof v === 'number' && (b[k] === undefined || v > b[k]!)) b[k] = v;
  return b;
}

function updateCharts(r: TrainingRunView, rebuild: boolean): void {
  const colors = chartPalette();
  const epochs = r.points.map((p) => p.epoch);
  const loss = r.points.map((p) => p.loss ?? null);
  const metricNames: Array<[string, string]> = [
    ['pixel_auroc', 'pixel AUROC'],
    ['aupro', 'AUPRO'],
    ['image_auroc', 'image AUROC'],
    ['miou', 'mIoU'],
  ];
  const withVal = r.points.filter((p) => p.metrics && Object.keys(p.metrics).length);
  if (rebuild || !lossChart) {
    lossChart?.destroy();
    lossChart = new Chart(lossCanvas, {
      type: 'line',
      data: { labels: epochs, datasets: [{ label: 'loss', data: loss, borderColor: colors[0], backgroundColor: colors[0], pointRadius: 2, spanGaps: true }] },
      options: { scales: { x: { title: { display: true, text: 'epoch' } }, y: { title: { display: true, text: 'loss (−log likelihood / dim)' } } }, plugins: { legend: { display: false } } },
    });
  } else {
    lossChart.data.labels = epochs;
    lossChart.data.datasets[0]!.data = loss;
    lossChart.update('none');
  }
  const valData = metricNames.map(([k, label], i) => ({
    label,
    data: withVal.map((p) => ({ x: p.epoch, y: (p.metrics as Record<string, number | undefined>)[k] ?? null })),
    borderColor: colors[(i + 1) % colors.length],
    backgroundColor: colors[(i + 1) % colors.length],
    pointRadius: 3,
    showLine: true,
    spanGaps: true,
  }));
  if (rebuild || !valChart) {
    valChart?.destroy();
    valChart = new Chart(valCanvas, {
      type: 'scatter',
      data: { datasets: valData as never },
      options: {
        scales: { x: { title: { display: true, text: 'epoch' }, min: 0, suggestedMax: r.epochs || undefined }, y: { min: 0, max: 1 } },
        plugins: { legend: { position: 'bottom' } },
      },
    });
  } else {
    valData.forEach((d, i) => {
      if (valChart!.data.datasets[i]) valChart!.data.datasets[i]!.data = d.data as never;
    });
    valChart.update('none');
  }
}

window.addEventListener('message', (ev: MessageEvent<TrainingToWebview>) => {
  const m = ev.data;
  if (m.type === 'runs') {
    runs.clear();
    for (const r of m.runs) runs.set(r.runId, r);
    if (!selected || !runs.has(selected)) selected = m.selected ?? m.runs[m.runs.length - 1]?.runId;
    else if (m.selected) selected = m.selected;
    vscode.setState({ selected });
    renderPicker();
    render(true);
  } else if (m.type === 'update') {
    const before = runs.get(m.run.runId);
    const isNew = !before;
    const stateChanged = before?.state !== m.run.state;
    runs.delete(m.run.runId);
    runs.set(m.run.runId, m.run);
    // Follow a new training unless the user is watching another one that still runs.
    if (isNew && (!selected || runs.get(selected)?.state !== 'running')) {
      selected = m.run.runId;
      vscode.setState({ selected });
    }
    if (isNew || stateChanged) renderPicker();
    if (m.run.runId === selected) render(isNew);
  }
});

post({ type: 'ready' });
