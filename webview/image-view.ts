/**
 * U-Flow Image View (custom editor): the image; on hover, the anomaly heatmap overlay and the NFA
 * segmentation contour, with the anomaly score and −log NFA under the cursor.
 * Keyboard: focus the image and press O to pin the overlay; arrow keys move the probe.
 */
import type { Prediction } from '../server/protocol.js';
import { addStyles, baseCss, el, fmt, predictionMapShape, registerToolkit, themeColor, vscodeApi, type ImageFromWebview, type ImageToWebview } from './shared.js';

registerToolkit();
interface ViewState {
  pinned?: boolean;
  opacity?: number;
}
const vscode = vscodeApi<ViewState>();
const viewState: ViewState = { pinned: false, opacity: 0.85, ...(vscode.getState() ?? {}) };
addStyles(`${baseCss}
  body { padding: 0 12px 12px; }
  .bar { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; padding: 8px 0; position: sticky; top: 0; background: var(--vscode-editor-background); z-index: 2; }
  .bar .name { font-weight: 600; }
  .num { font-variant-numeric: tabular-nums; }
  #stage { position: relative; display: inline-block; line-height: 0; outline-offset: 2px; cursor: crosshair; }
  #stage img, #stage canvas { width: 100%; height: 100%; display: block; }
  #stage.pixelated img, #stage.pixelated canvas { image-rendering: pixelated; }
  #stage .layer { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; transition: opacity .12s; }
  #overlay { opacity: 0; }
  #contour { opacity: 0; }
  #stage.show #overlay { opacity: var(--overlay-opacity, .85); }
  #stage.show #contour { opacity: 1; }
  #probe { position: absolute; pointer-events: none; padding: 3px 6px; line-height: 1.3; font-size: 12px; border-radius: 3px; white-space: nowrap;
           background: var(--vscode-editorHoverWidget-background); color: var(--vscode-editorHoverWidget-foreground); border: 1px solid var(--vscode-editorHoverWidget-border); display: none; z-index: 3; }
  #stage.show #probe.on { display: block; }
  #status { min-height: 1.4em; }
  .legend { display: inline-flex; gap: 6px; align-items: center; }
  .swatch { width: 90px; height: 10px; background: linear-gradient(90deg, #000080, #0000ff, #00ffff, #ffff00, #ff0000, #800000); border-radius: 2px; }
`);

let prediction: Prediction | undefined;
let natural = { w: 0, h: 0 };

const app = document.getElementById('app')!;
app.removeAttribute('aria-busy');
const nameEl = el('span', { class: 'name', id: 'name' });
const scoreEl = el('span', { class: 'num', id: 'score', 'aria-live': 'polite' });
const nfaEl = el('span', { class: 'num', id: 'max-nfa' });
const pin = document.createElement('vscode-checkbox') as HTMLElement & { checked: boolean };
pin.id = 'pin';
pin.textContent = 'pin overlay (O)';
if (viewState.pinned) pin.setAttribute('checked', '');
const opacity = el('input', { type: 'range', id: 'opacity', min: 0.1, max: 1, step: 0.05, value: viewState.opacity, 'aria-label': 'Overlay opacity' });
const retry = el('vscode-button' as 'button', { id: 'retry', appearance: 'secondary', hidden: true }, 'Retry');
const status = el('p', { id: 'status', class: 'muted', role: 'status' });
const img = el('img', { id: 'image', alt: 'image' });
const overlay = el('img', { id: 'overlay', class: 'layer', alt: 'anomaly heatmap' });
const contour = el('canvas', { id: 'contour', class: 'layer', 'aria-hidden': 'true' });
const probe = el('div', { id: 'probe', role: 'tooltip' });
const stage = el('div', { id: 'stage', tabindex: 0, 'aria-label': 'Image. Hover or press O to show the anomaly map; arrow keys move the probe.' }, img, overlay, contour, probe);
const readout = el('span', { id: 'readout', class: 'num muted' });
app.replaceChildren(
  el(
    'div',
    { class: 'bar' },
    nameEl,
    scoreEl,
    nfaEl,
    el('span', { class: 'legend muted' }, 'low', el('span', { class: 'swatch' }), 'high'),
    pin,
    el('label', { class: 'muted row' }, 'opacity', opacity),
    retry,
    readout,
  ),
  status,
  stage,
);
stage.style.setProperty('--overlay-opacity', String(viewState.opacity));

/** Fits the image to the editor: scaled down when large, up (at most 8×, crisp pixels) when small. */
function fit(): void {
  const w = natural.w || prediction?.width || 0;
  const h = natural.h || prediction?.height || 0;
  if (!w || !h) return;
  const availW = Math.max(64, document.documentElement.clientWidth - 28);
  const availH = Math.max(64, window.innerHeight - stage.getBoundingClientRect().top - window.scrollY - 12);
  const scale = Math.min(availW / w, availH / h, 8);
  stage.style.width = `${Math.round(w * scale)}px`;
  stage.style.height = `${Math.round(h * scale)}px`;
  stage.classList.toggle('pixelated', scale >= 2);
  stage.dataset.scale = scale.toFixed(3);
  drawContour();
}
window.addEventListener('resize', fit);

function post(m: ImageFromWebview): void {
  vscode.postMessage(m);
}
function save(): void {
  vscode.setState(viewState);
}

function setShown(show: boolean): void {
  stage.classList.toggle('show', show && !!prediction);
  if (!show) probe.classList.remove('on');
}

pin.addEventListener('change', () => {
  viewState.pinned = pin.checked;
  save();
  setShown(viewState.pinned);
});
opacity.addEventListener('input', () => {
  viewState.opacity = Number(opacity.value);
  stage.style.setProperty('--overlay-opacity', String(viewState.opacity));
  save();
});
retry.addEventListener('click', () => post({ type: 'predict' }));

stage.addEventListener('mouseenter', () => {
  setShown(true);
  post({ type: 'hover', inside: true });
});
stage.addEventListener('mouseleave', () => {
  setShown(!!viewState.pinned);
  readout.textContent = '';
  post({ type: 'hover', inside: false });
});
stage.addEventListener('mousemove', (e) => {
  const r = stage.getBoundingClientRect();
  probeAt((e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height, e.clientX - r.left, e.clientY - r.top);
});

let kx = 0.5;
let ky = 0.5;
stage.addEventListener('keydown', (e) => {
  const step = e.shiftKey ? 0.1 : 0.02;
  if (e.key === 'o' || e.key === 'O' || e.key === ' ') {
    e.preventDefault();
    viewState.pinned = !viewState.pinned;
    pin.checked = viewState.pinned;
    save();
    setShown(viewState.pinned);
    return;
  }
  const moves: Record<string, [number, number]> = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  const mv = moves[e.key];
  if (!mv) return;
  e.preventDefault();
  kx = Math.min(0.999, Math.max(0, kx + mv[0]));
  ky = Math.min(0.999, Math.max(0, ky + mv[1]));
  setShown(true);
  const r = stage.getBoundingClientRect();
  probeAt(kx, ky, kx * r.width, ky * r.height);
});

/** NFA = 10^(−value) for people: 3.2e-5, or "< 1e-300". */
function nfaText(negLog: number): string {
  if (!Number.isFinite(negLog) || negLog > 300) return '< 1e-300';
  return (10 ** -negLog).toExponential(1);
}

/** Shows the values under a point given as fractions of the image. */
function probeAt(fx: number, fy: number, px: number, py: number): void {
  const p = prediction;
  if (!p || fx < 0 || fy < 0 || fx >= 1 || fy >= 1) return;
  const [mh, n] = predictionMapShape(p);
  const mx = Math.min(n - 1, Math.floor(fx * n));
  const my = Math.min(mh - 1, Math.floor(fy * mh));
  const a = p.anomalyMap?.[my * n + mx];
  const nl = p.negLogNfaMap?.[my * n + mx];
  const x = Math.floor(fx * (natural.w || p.width));
  const y = Math.floor(fy * (natural.h || p.height));
  const region = nl !== undefined && nl > 0 ? p.regions?.find((r) => mx >= r.box[0] && my >= r.box[1] && mx < r.box[0] + r.box[2] && my < r.box[1] + r.box[3]) : undefined;
  const inside = nl !== undefined && nl > 0 ? ` · inside a detection (anomalous; NFA ${nfaText(nl)}${region ? `, region peak −log NFA ${region.maxNegLogNfa.toFixed(1)}` : ''})` : ' · outside any detection';
  const text = `anomaly ${fmt(a, 3)} · −log NFA ${fmt(nl, 2)}${nl === undefined ? '' : inside}`;
  probe.textContent = text;
  probe.classList.add('on');
  const rect = stage.getBoundingClientRect();
  const left = Math.min(px + 14, rect.width - probe.offsetWidth - 4);
  const top = py + 18 + probe.offsetHeight > rect.height ? py - probe.offsetHeight - 8 : py + 18;
  probe.style.left = `${Math.max(0, left)}px`;
  probe.style.top = `${Math.max(0, top)}px`;
  readout.textContent = `(${x}, ${y}) ${text}`;
  stage.dataset.probe = JSON.stringify({ x, y, anomaly: a, negLogNfa: nl });
}

/**
 * Draws the boundary of the NFA segmentation (log NFA < 0, i.e. −log NFA > 0) at the displayed
 * size, from the raw −log NFA map (bilinear between its cells, so the line is smooth and thin even
 * when a small image is magnified).
 */
function drawContour(): void {
  const p = prediction;
  const map = p?.negLogNfaMap;
  if (!p || !map) return;
  const [mh, n] = predictionMapShape(p);
  if (map.length !== mh * n) return;
  const w = Math.max(1, Math.round(stage.clientWidth || p.width));
  const h = Math.max(1, Math.round(stage.clientHeight || p.height));
  const inside = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const fy = Math.min(mh - 1, Math.max(0, ((y + 0.5) * mh) / h - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(mh - 1, y0 + 1);
    const ty = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = Math.min(n - 1, Math.max(0, ((x + 0.5) * n) / w - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(n - 1, x0 + 1);
      const tx = fx - x0;
      const v =
        (1 - ty) * ((1 - tx) * map[y0 * n + x0]! + tx * map[y0 * n + x1]!) + ty * ((1 - tx) * map[y1 * n + x0]! + tx * map[y1 * n + x1]!);
      inside[y * w + x] = v > 0 ? 1 : 0;
    }
  }
  const on = (x: number, y: number) => x >= 0 && y >= 0 && x < w && y < h && inside[y * w + x] === 1;
  contour.width = w;
  contour.height = h;
  const ctx = contour.getContext('2d')!;
  const out = ctx.createImageData(w, h);
  const colour = parseColour(themeColor('charts-yellow', '#ffd700'));
  const thick = Math.max(2, Math.round(Math.max(w, h) / 300));
  let edges = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!on(x, y)) continue;
      // Boundary: a neighbour outside the region or the image (a region touching the border is closed there).
      if (on(x - 1, y) && on(x + 1, y) && on(x, y - 1) && on(x, y + 1)) continue;
      edges++;
      for (let dy = -thick + 1; dy < thick; dy++) {
        for (let dx = -thick + 1; dx < thick; dx++) {
          const xx = x + dx;
          const yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
          const i = (yy * w + xx) * 4;
          out.data[i] = colour[0];
          out.data[i + 1] = colour[1];
          out.data[i + 2] = colour[2];
          out.data[i + 3] = 255;
        }
      }
    }
  }
  ctx.putImageData(out, 0, 0);
  contour.dataset.edges = String(edges);
}

function parseColour(c: string): [number, number, number] {
  const m = /^#([0-9a-f]{6})$/i.exec(c.trim());
  if (m) {
    const v = parseInt(m[1]!, 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }
  const r = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(c);
  return r ? [Number(r[1]), Number(r[2]), Number(r[3])] : [255, 215, 0];
}

window.addEventListener('message', async (ev: MessageEvent<ImageToWebview>) => {
  const m = ev.data;
  if (m.type === 'image') {
    nameEl.textContent = m.name;
    document.title = m.name;
    if (m.src) {
      img.src = m.src;
      await img.decode().catch(() => undefined);
      natural = { w: img.naturalWidth, h: img.naturalHeight };
      fit();
    }
    if (m.note) status.textContent = m.note;
  } else if (m.type === 'busy') {
    status.textContent = m.message;
    status.className = 'muted';
    retry.hidden = true;
    stage.setAttribute('aria-busy', 'true');
  } else if (m.type === 'error') {
    status.textContent = `No anomaly map: ${m.message}`;
    status.className = 'error';
    retry.hidden = false;
    stage.removeAttribute('aria-busy');
    document.body.dataset.state = 'error';
  } else if (m.type === 'prediction') {
    prediction = m.prediction;
    const p = m.prediction;
    if (!img.src || !natural.w) {
      // The browser could not show the original (TIFF): show the heatmap as the base image.
      img.src = p.anomalyMapPng;
      await img.decode().catch(() => undefined);
      natural = { w: img.naturalWidth, h: img.naturalHeight };
    }
    fit();
    overlay.src = p.anomalyMapPng;
    await overlay.decode().catch(() => undefined);
    drawContour();
    scoreEl.textContent = `score ${p.score.toFixed(3)}`;
    nfaEl.textContent = `max −log NFA ${p.maxNegLogNfa.toFixed(2)}${p.maxNegLogNfa > 0 ? ' · anomalous' : ' · normal'}`;
    status.textContent = `Hover the image to see the anomaly map and the NFA segmentation (log NFA < 0). Run ${p.runId}.`;
    status.className = 'muted';
    retry.hidden = true;
    stage.removeAttribute('aria-busy');
    document.body.dataset.state = 'ready';
    setShown(!!viewState.pinned || stage.matches(':hover'));
  }
});

post({ type: 'ready' });
