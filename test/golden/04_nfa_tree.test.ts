/**
 * Golden 04 (tree NFA, official src/nfa_tree.py): per image/scale ℓ maps (NaN = uncovered) and the
 * −log10 NFA map to atol 1e-3 with sign agreement where |value| > 1e-3. Config from the manifest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goldenCases, goldenLatents, loadGolden, skipReason } from '../helpers/golden.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';
import { negLogNfaTree, treeLog10ProbMap, treeLogNT } from '../../models/scores/nfa-tree.js';

for (const name of goldenCases('04_')) {
  test(`${name} tree NFA (cpu math)`, { skip: skipReason() }, () => {
    const g = loadGolden(name);
    const m = g.manifest;
    const { file, z } = goldenLatents(g);
    const T = m.target_size as number;
    if (typeof m.log10_n_tests_tree === 'number') {
      assert.equal(treeLogNT(z.map((zi) => zi.shape[1] * zi.shape[2])), m.log10_n_tests_tree, 'logNT (float32)');
    }
    const B = z[0]!.shape[0];
    let covered = 0;
    let total = 0;
    for (let b = 0; b < B; b++) {
      z.forEach((zi, s) => {
        const key = `tree_log10_prob_img${b}_scale${s + 1}`;
        const expected = g.get(file, key);
        assert.deepEqual(g.shape(file, key), [zi.shape[1], zi.shape[2]], `${key} shape`);
        const got = treeLog10ProbMap(zi, b);
        // Coverage (NaN pattern) must match exactly: it is the set of clusters.
        for (let i = 0; i < expected.length; i++) {
          assert.equal(Number.isNaN(got[i]!), Number.isNaN(expected[i]!), `${key}[${i}] coverage: ${got[i]} vs ${expected[i]}`);
        }
        assertClose(got, expected, { rtol: 1e-5, atol: 1e-4, what: key });
        covered += expected.filter((v) => !Number.isNaN(v)).length;
        total += expected.length;
      });
    }
    assert.ok(covered > 0, 'golden ℓ maps must cover some pixels');

    const score = negLogNfaTree(z, T);
    const expected = g.get(file, 'neg_log_nfa_tree');
    assertClose(score, expected, { rtol: 0, atol: 1e-3, what: 'neg_log_nfa_tree' });
    let signs = 0;
    for (let i = 0; i < expected.length; i++) {
      if (Math.abs(expected[i]!) > 1e-3) {
        assert.equal(score[i]! > 0, expected[i]! > 0, `detection sign at [${i}]: ${score[i]} vs ${expected[i]}`);
        signs++;
      }
    }
    const det = Array.from(expected).filter((v) => v > 0).length;
    assert.ok(det > 0 && det < expected.length, 'golden tree map must hold both detections and non-detections');
    console.log(`${name}: tree max|Δ| = ${maxAbsDiff(score, expected).toExponential(2)}, ${det}/${expected.length} detected, ${signs} signs checked, ℓ coverage ${covered}/${total}`);
  });
}
