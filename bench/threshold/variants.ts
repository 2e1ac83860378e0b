/**
 * The detection variants side by side on one trained run: false alarms on the good test images and
 * on the held-out normal images, mIoU at log NFA = 0 and the oracle mIoU (best threshold, labels
 * used). What the README's "How the threshold is set" table is made from.
 *
 *   node --import tsx bench/threshold/variants.ts --train_dir <dir> --run <run-id> [--json out.json]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runLatents } from '../../server/run-latents.js';
import { crossFitFalseAlarms, latentsPerImage } from '../../server/calibration.js';
import { negLogNfaOf, type NfaMode } from '../../models/train/evaluate.js';
import { fitNull, standardiseLatents, type NullFit } from '../../models/scores/nfa-calibrated.js';
import { negLogNfaTree } from '../../models/scores/nfa-tree.js';
import { falseAlarmStats } from '../../models/metrics/false-alarms.js';
import { thresholdSummary } from '../../models/train/threshold-report.js';
import type { Latent } from '../../models/scores/latent.js';
import * as empirical from './empirical-null.js';

const { values } = parseArgs({ options: { train_dir: { type: 'string' }, run: { type: 'string' }, json: { type: 'string' } } });
if (!values.train_dir || !values.run) {
  console.error('usage: variants.ts --train_dir <dir> --run <run-id> [--json out.json]');
  process.exit(2);
}
const T = 256;
const { run, items, masks, test, holdout } = await runLatents({ trainDir: values.train_dir, runId: values.run });
const testImgs = latentsPerImage(test);
const holdImgs = latentsPerImage(holdout);
const fit: NullFit | undefined = holdout.length ? fitNull(holdout) : undefined;

type Variant = { name: string; map: (z: Latent[]) => Float32Array; holdout?: () => ReturnType<typeof crossFitFalseAlarms> };
const paper = (m: Exclude<NfaMode, 'none' | 'calibrated'>): Variant => ({ name: `paper ${m}`, map: (z) => negLogNfaOf(z, T, m) });
const variants: Variant[] = [paper('tree'), paper('block'), paper('block-hp')];
if (fit) {
  variants.push({ name: 'paper tree, held-out scale + guard', map: (z) => guardedTree(standardiseLatents(fit, z)) });
  const pc = perChannelMoments(holdout);
  variants.push({ name: 'paper tree, per-channel moments + guard', map: (z) => guardedTree(z.map((zi, s) => perChannelStandardise(zi, pc[s]!))) });
  variants.push({ name: 'paper block-hp, held-out scale', map: (z) => negLogNfaOf(standardiseLatents(fit, z), T, 'block-hp') });
  variants.push({ name: 'paper block, held-out scale', map: (z) => negLogNfaOf(standardiseLatents(fit, z), T, 'block') });
  variants.push({
    name: 'scaled tree+guard ∪ scaled block-hp',
    map: (z) => {
      const s = standardiseLatents(fit, z);
      const a = guardedTree(s);
      const b = negLogNfaOf(s, T, 'block-hp');
      return a.map((v, i) => Math.max(v, b[i]!) - Math.log10(2));
    },
  });
  const efit = empirical.fitNull(holdout);
  variants.push({ name: 'empirical region null (not used)', map: (z) => empirical.negLogNfaCalibrated(efit, z, T) });
  variants.push({ name: 'calibrated (product)', map: (z) => negLogNfaOf(z, T, 'calibrated', { calibration: fit }), holdout: () => crossFitFalseAlarms(holdImgs, T) });
}

/** Per level, each channel's mean and deviation on the held-out images. */
function perChannelMoments(levels: Latent[][]): Array<{ mean: Float64Array; std: Float64Array }> {
  return levels.map((zs) => {
    const C = zs[0]!.shape[3];
    const sum = new Float64Array(C);
    const sq = new Float64Array(C);
    let n = 0;
    for (const z of zs) for (let i = 0; i < z.data.length; i += C, n++) for (let c = 0; c < C; c++) (sum[c] += z.data[i + c]!), (sq[c] += z.data[i + c]! ** 2);
    const mean = sum.map((v) => v / n);
    return { mean, std: sq.map((v, c) => Math.sqrt(Math.max(v / n - mean[c]! ** 2, 1e-12))) };
  });
}

function perChannelStandardise(z: Latent, m: { mean: Float64Array; std: Float64Array }): Latent {
  const C = z.shape[3];
  return { data: z.data.map((v, i) => (v - m.mean[i % C]!) / m.std[i % C]!), shape: z.shape };
}

/** The paper's tree computation with the Chernoff guard (no evidence where u ≤ 1). */
function guardedTree(z: Latent[]): Float32Array {
  return negLogNfaTree(z, T, undefined, true);
}

const rows: Array<Record<string, unknown>> = [];
for (const v of variants) {
  const maps = testImgs.map((z) => v.map(z));
  const s = thresholdSummary(items, masks, maps, T, 0);
  const ho = v.holdout ? v.holdout() : holdImgs.length ? { ...falseAlarmStats(holdImgs.map((z) => v.map(z)), T, T, 0), folds: 0 } : undefined;
  const row = {
    variant: v.name,
    testGoodFalseAlarms: s.falseAlarms.testGood.meanRegions,
    testGoodImagesFlagged: s.falseAlarms.testGood.imagesWithDetections,
    testGoodPixels: s.falseAlarms.testGood.pixelFraction,
    worst: s.falseAlarms.testGood.worst?.regions ?? 0,
    holdoutFalseAlarms: ho?.meanRegions ?? null,
    miouAuto: s.miou.automatic,
    miouOracle: s.miou.oracle?.miou ?? null,
    oracleThreshold: s.miou.oracle?.threshold ?? null,
    perDefect: Object.fromEntries(Object.entries(s.perDefect).map(([d, p]) => [d, { auto: p.automatic, oracle: p.oracle.miou }])),
  };
  rows.push(row);
  const f = (x: number | null | undefined, d = 3) => (x === null || x === undefined ? '-' : x.toFixed(d));
  console.log(
    `${v.name.padEnd(36)} FA/good ${f(row.testGoodFalseAlarms, 2)} (flagged ${f(row.testGoodImagesFlagged, 2)}, worst ${row.worst}, ${f(100 * row.testGoodPixels, 2)} % px) | held-out ${f(row.holdoutFalseAlarms, 2)} | mIoU ${f(row.miouAuto)} vs oracle ${f(row.miouOracle)} @${row.oracleThreshold} | ` +
      Object.entries(row.perDefect).map(([d, p]) => `${d} ${f(p.auto)}/${f(p.oracle)}`).join(' '),
  );
}
if (fit) console.log(`calibrated: ${fit.kind}, offset ${fit.offset.toFixed(2)}; ${fit.why}`);
console.log(`run ${run.runId}: ${items.length} test images (${items.filter((i) => i.label === 0).length} good), ${holdImgs.length} held out`);
if (values.json) writeFileSync(values.json, JSON.stringify({ runId: run.runId, category: run.category, rows }, null, 2));
