/**
 * Human-readable outputs of an evaluation: the terminal table (`uflow evaluate`) and a
 * self-contained HTML report with the maps (`uflow demo`, `report.html`). Both read only the
 * Evaluation object (the same numbers as evaluation.json).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteFile } from '../models/io/atomic.js';
import type { Evaluation, FalseAlarms, MetricSet, OracleMiou, RunInfo } from './protocol.js';
import { formatSize } from '../models/size.js';

function f(v: number | null | undefined, digits = 4): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

const COLS = ['image AUROC', 'pixel AUROC', 'AUPRO', 'mIoU@logNFA=0', 'images'] as const;

function row(name: string, m: MetricSet): string[] {
  return [name, f(m.image_auroc), f(m.pixel_auroc), f(m.aupro), f(m.miou), String(m.images)];
}

/** Rows: the category (all test images), then each defect type (its images plus the good ones). */
export function evaluationRows(ev: Evaluation): string[][] {
  const rows = [row(`${ev.category} (all)`, ev.overall)];
  for (const [d, m] of Object.entries(ev.perDefect).sort(([a], [b]) => a.localeCompare(b))) rows.push(row(`  ${d}`, m));
  return rows;
}

const pct = (v: number): string => `${(100 * v).toFixed(v < 0.001 && v > 0 ? 3 : 2)} %`;

function alarmsText(a: FalseAlarms | undefined, what: string): string {
  if (!a) return `${what}: -`;
  const worst = a.worst && a.worst.regions > 0 ? `, worst ${a.worst.regions}${a.worst.path ? ` (${a.worst.path.split(/[/\\]/).pop()})` : ''}` : '';
  const folds = a.folds ? `, cross-fitted over ${a.folds} folds` : '';
  return `${what}: ${a.meanRegions.toFixed(2)} per image on ${a.images}${worst}, ${pct(a.pixelFraction)} of pixels${folds}`;
}

/** Where the oracle is: its threshold, or that detecting nothing is best. */
function oracleWhere(o: OracleMiou): string {
  return o.detectsNothing ? '(detecting nothing is best)' : `at −log NFA > ${o.threshold}`;
}

/** What a user can do when no threshold beats detecting nothing. */
const NOTHING_BEST =
  '  no threshold beats detecting nothing: this model\'s maps do not separate the defects from normal texture well enough (see pixel AUROC and AUPRO). The threshold cannot fix that; stronger features can (a GPU backbone, or resnet50 / resnet18), or training longer.';

/** The threshold section: what decided "defect", and how often it is wrong on normal images. */
export function thresholdLines(ev: Evaluation): string[] {
  const t = ev.threshold;
  if (!t) return [];
  const o = t.miou.oracle;
  const lines = [
    `threshold: log NFA < 0 with the ${t.variant === 'calibrated' ? 'calibrated' : `paper’s ${t.variant}`} NFA — ${t.calibration.description}`,
    `false alarms (regions per good image) — ${alarmsText(t.falseAlarms.testGood, 'test good')}; ${alarmsText(t.falseAlarms.holdout, 'held-out')}`,
    `mIoU at log NFA = 0: ${f(t.miou.automatic)}; oracle (best threshold, labels used): ${o ? `${f(o.miou)} ${oracleWhere(o)}` : '-'}${o && t.miou.automatic !== null && o.miou > 0 ? ` (automatic/oracle ${(t.miou.automatic / o.miou).toFixed(2)})` : ''}`,
  ];
  if (o?.detectsNothing) lines.push(NOTHING_BEST);
  const per = Object.entries(t.perDefect).sort(([a], [b]) => a.localeCompare(b));
  if (per.length > 1) lines.push('  per defect (automatic / oracle): ' + per.map(([d, v]) => `${d} ${f(v.automatic, 3)} / ${f(v.oracle.miou, 3)}${v.oracle.detectsNothing ? ' (nothing)' : ''}`).join(', '));
  return lines;
}

export function formatEvaluationTable(ev: Evaluation): string {
  const header = ['category / defect', ...COLS];
  const rows = [header, ...evaluationRows(ev)];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [
    `${ev.category} · run ${ev.runId} · ${ev.model} · NFA ${ev.highPrecision ? 'high precision' : 'standard'} · at ${(ev.targetShape ?? [ev.targetSize, ev.targetSize]).join('×')}`,
    line(header),
    sep,
    ...rows.slice(1).map(line),
    ...thresholdLines(ev),
  ].join('\n');
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function dataUri(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  return `data:image/png;base64,${readFileSync(file).toString('base64')}`;
}

function svgCurve(points: Array<{ x: number; y: number }>, title: string, xLabel: string, yLabel: string, xMax = 1): string {
  const W = 260;
  const H = 200;
  const P = 30;
  const sx = (x: number): number => P + (x / xMax) * (W - P - 8);
  const sy = (y: number): number => H - P - y * (H - P - 8);
  const step = Math.max(1, Math.floor(points.length / 400));
  const pts = points.filter((_, i) => i % step === 0 || i === points.length - 1);
  const d = pts.map((p, i) => `${i ? 'L' : 'M'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join('');
  return `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">
<rect x="${P}" y="8" width="${W - P - 8}" height="${H - P - 8}" fill="none" stroke="#999"/>
<path d="${d}" fill="none" stroke="#c33" stroke-width="1.5"/>
<text x="${W / 2}" y="${H - 8}" font-size="10" text-anchor="middle">${esc(xLabel)} (0–${xMax})</text>
<text x="10" y="${H / 2}" font-size="10" text-anchor="middle" transform="rotate(-90 10 ${H / 2})">${esc(yLabel)}</text>
<text x="${W / 2}" y="20" font-size="11" text-anchor="middle">${esc(title)}</text></svg>`;
}

/**
 * Writes a self-contained HTML report (tables, curves, and a gallery of the maps sorted by score,
 * images inlined as data URIs) for the given evaluations. Returns its path.
 */
export function writeHtmlReport(path: string, evaluations: Array<{ run: RunInfo; evaluation: Evaluation }>, opts: { title?: string; notes?: string[]; galleryLimit?: number } = {}): string {
  const title = opts.title ?? 'U-Flow report';
  const parts: string[] = [];
  parts.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;padding:6px;font-size:12px}.card img{width:128px;height:128px;image-rendering:pixelated;margin-right:2px}
.bad{color:#b00}.good{color:#070}.curves{display:flex;gap:16px;flex-wrap:wrap}</style></head><body><h1>${esc(title)}</h1>`);
  for (const n of opts.notes ?? []) parts.push(`<p>${esc(n)}</p>`);
  for (const { run, evaluation: ev } of evaluations) {
    parts.push(`<h2>${esc(ev.category)} — ${esc(ev.model)} — run ${esc(ev.runId)}</h2>`);
    parts.push(
      `<p>backbone ${esc(run.config.model.backbone)}, input ${formatSize(run.config.model.input_size)}, flow steps ${run.config.model.flow_steps}, ${run.epochsDone} epochs, engine ${esc(run.engine.backend)} (${esc(run.engine.device)}); evaluated at ${(ev.targetShape ?? [ev.targetSize, ev.targetSize]).join('×')}, NFA ${ev.highPrecision ? 'high precision' : 'standard'}.</p>`,
    );
    parts.push('<table><tr><th>category / defect</th>' + COLS.map((c) => `<th>${esc(c)}</th>`).join('') + '</tr>');
    for (const r of evaluationRows(ev)) parts.push('<tr>' + r.map((c) => `<td>${esc(c.trim())}</td>`).join('') + '</tr>');
    parts.push('</table>');
    const tl = thresholdLines(ev);
    if (tl.length) parts.push('<h3>How the threshold was set</h3><ul>' + tl.map((l) => `<li>${esc(l.trim())}</li>`).join('') + '</ul>');
    parts.push('<div class="curves">');
    if (ev.curves.roc.length) parts.push(svgCurve(ev.curves.roc, 'image ROC', 'FPR', 'TPR'));
    if (ev.curves.pixelRoc.length) parts.push(svgCurve(ev.curves.pixelRoc, 'pixel ROC', 'FPR', 'TPR'));
    if (ev.curves.pro.length) parts.push(svgCurve(ev.curves.pro, 'PRO (FPR ≤ 0.3)', 'FPR', 'PRO', 0.3));
    parts.push('</div><h3>Test images by score (heatmap overlay · −log NFA · segmentation at log NFA = 0 · ground truth)</h3><div class="gallery">');
    // By score; ties (a saturated map: 1 − P = 1) by the NFA evidence.
    const imgs = [...ev.images].sort((a, b) => b.score - a.score || b.maxNegLogNfa - a.maxNegLogNfa).slice(0, opts.galleryLimit ?? 48);
    for (const im of imgs) {
      const cells: string[] = [];
      for (const rel of [im.maps?.overlay ?? im.maps?.anomaly, im.maps?.nfa, im.maps?.segmentation]) {
        const uri = rel ? dataUri(join(run.dir, rel)) : undefined;
        if (uri) cells.push(`<img src="${uri}" alt="">`);
      }
      if (im.maskPath) {
        const uri = dataUri(im.maskPath);
        if (uri) cells.push(`<img src="${uri}" alt="ground truth">`);
      }
      const name = im.path.split(/[/\\]/).slice(-2).join('/');
      parts.push(
        `<div class="card">${cells.join('')}<br><span class="${im.label ? 'bad' : 'good'}">${esc(im.defect)}</span> ${esc(name)} · score ${im.score.toFixed(3)} · max −logNFA ${im.maxNegLogNfa.toFixed(1)} · IoU ${im.iou.toFixed(2)}${im.regions ? ` · ${im.regions.length} region${im.regions.length === 1 ? '' : 's'}${im.regions.length ? ` (−logNFA ${im.regions.slice(0, 3).map((r) => r.maxNegLogNfa.toFixed(1)).join(', ')})` : ''}` : ''}</div>`,
      );
    }
    parts.push('</div>');
  }
  parts.push('</body></html>\n');
  atomicWriteFile(path, parts.join('\n'));
  return path;
}
