/**
 * Golden 06 (metrics: sklearn AUROC, official aupro.py and miou.py, sklearn F1): every expected
 * value of the manifest and the tensors (per-image intersections/unions, averaged PRO curve).
 * Shapes, thresholds and keys come from the manifest and the tensors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goldenCases, loadGolden, skipReason } from '../helpers/golden.js';
import { assertClose } from '../helpers/assert-close.js';
import { aupro } from '../../models/metrics/aupro.js';
import { imageAuroc, imageMaxScores, rocAuc } from '../../models/metrics/roc.js';
import { miou } from '../../models/metrics/miou.js';
import { pixelF1 } from '../../models/metrics/f1.js';

for (const name of goldenCases('06_')) {
  test(`${name} (cpu math)`, { skip: skipReason() }, () => {
    const g = loadGolden(name);
    const m = g.manifest;
    const file = Object.keys(g.files).find((f) => g.files[f]!.has('anomaly_maps'));
    assert.ok(file, 'anomaly_maps tensor');
    const maps = g.get(file, 'anomaly_maps');
    const masks = g.get(file, 'masks');
    const shape = g.shape(file, 'anomaly_maps');
    const n = shape[0]!;
    const [h, w] = shape.slice(-2) as [number, number];
    assert.equal(maps.length, n * h * w, 'maps are [N, (1,) H, W]');
    const labels = g.get(file, 'labels');

    // image AUROC on max-pooled maps
    const scores = imageMaxScores(maps, n);
    if (g.files[file]!.has('image_scores')) assertClose(scores, g.get(file, 'image_scores'), { rtol: 0, atol: 0, what: 'image_scores' });
    const imgAuc = imageAuroc(maps, n, labels);
    assert.ok(Math.abs(imgAuc - m.image_auroc) <= 1e-6, `image AUROC ${imgAuc} vs ${m.image_auroc}`);

    // pixel AUROC over all pixels of all images
    const pixAuc = rocAuc(maps, masks);
    assert.ok(Math.abs(pixAuc - m.pixel_auroc) <= 1e-6, `pixel AUROC ${pixAuc} vs ${m.pixel_auroc}`);

    // AUPRO and the averaged curve
    const limKey = Object.keys(m).find((k) => k.startsWith('aupro_'));
    assert.ok(limKey, 'aupro_<limit> in the manifest');
    const limit = Number(limKey.slice('aupro_'.length));
    const ef = g.get(file, 'pro_curve_fpr');
    const ep = g.get(file, 'pro_curve_pro');
    // both evaluation paths: the default sparse one and the float32 replay of the reference
    const pro = aupro(maps, masks, n, h, w, limit);
    for (const [path, r] of [
      ['sparse', pro],
      ['float32 replay', aupro(maps, masks, n, h, w, limit, { exact: true })],
    ] as const) {
      assert.ok(Math.abs(r.aupro - m[limKey]) <= 1e-4, `${path} AUPRO ${r.aupro} vs ${m[limKey]}`);
      assert.equal(r.points, ef.length, `${path}: K (global ROC points with fpr ≤ limit)`);
      assertClose(r.fpr, ef, { rtol: 0, atol: 1e-4, what: `${path} pro_curve_fpr` });
      assertClose(r.pro, ep, { rtol: 0, atol: 1e-4, what: `${path} pro_curve_pro` });
    }

    // mIoU at the manifest thresholds, per-image intersections and unions
    const thresholds = m.thresholds as number[];
    const r = miou(maps, masks, n, thresholds);
    r.miou.forEach((v, t) => assert.ok(Math.abs(v - m.miou[t]) <= 1e-6, `mIoU@${thresholds[t]} ${v} vs ${m.miou[t]}`));
    const ei = g.get(file, 'iou_intersections');
    const eu = g.get(file, 'iou_unions');
    assert.deepEqual(r.intersections.flat(), Array.from(ei), 'intersections');
    assert.deepEqual(r.unions.flat(), Array.from(eu), 'unions');

    // pixel F1 at each threshold of the manifest
    for (const [thr, expected] of Object.entries(m.pixel_f1 as Record<string, number>)) {
      const f1 = pixelF1(maps, masks, Number(thr));
      assert.ok(Math.abs(f1 - expected) <= 1e-6, `F1@${thr} ${f1} vs ${expected}`);
    }
    console.log(
      `${name}: imageAUROC ${imgAuc}, pixelAUROC ${pixAuc} (Δ ${(pixAuc - m.pixel_auroc).toExponential(1)}), AUPRO ${pro.aupro} (Δ ${(pro.aupro - m[limKey]).toExponential(1)}), ${pro.regions} regions, K = ${pro.points}, mIoU ${r.miou.map((v) => v.toFixed(6)).join('/')}`,
    );
  });
}
