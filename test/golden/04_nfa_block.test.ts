/**
 * Golden 04 (block NFA, official src/nfa_block.py, low precision): per-scale log10 tail maps to
 * rtol 1e-9 and the −log10 NFA map to atol 1e-3. Config (T, window, p, scales) from the manifest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goldenCases, goldenLatents, loadGolden, skipReason } from '../helpers/golden.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';
import { blockHalfWindow, blockLog10ProbScale, blockLogNT, blockTau, negLogNfaBlock } from '../../models/scores/nfa-block.js';

for (const name of goldenCases('04_')) {
  test(`${name} block NFA (cpu math)`, { skip: skipReason() }, () => {
    const g = loadGolden(name);
    const m = g.manifest;
    const { file, z } = goldenLatents(g);
    const opts = { winSize: m.win_size as number, p: m.binomial_probability_thr as number, targetSize: m.target_size as number };
    assert.ok(z.length >= 1);

    // τ: ours is the correctly rounded χ²₁ quantile; scipy's differs by a few ulp only.
    assert.ok(Math.abs(blockTau(opts.p) - m.tau_chi2_ppf) < 1e-13 * m.tau_chi2_ppf, `tau ${blockTau(opts.p)} vs ${m.tau_chi2_ppf}`);
    assert.equal(Math.fround(blockTau(opts.p)), Math.fround(m.tau_chi2_ppf), 'τ must agree in float32 (the comparison dtype)');
    if (Array.isArray(m.half_windows)) {
      assert.deepEqual(z.map((_, s) => blockHalfWindow(opts.winSize, s)), m.half_windows);
    }
    if (typeof m.log10_n_tests_block === 'number') assert.equal(blockLogNT(z), m.log10_n_tests_block);

    z.forEach((zi, s) => {
      const key = `block_log10_prob_scale${s + 1}`;
      const expected = g.get64(file, key);
      const [B, , h, w] = g.shape(file, key);
      assert.deepEqual([B, h, w], [zi.shape[0], zi.shape[1], zi.shape[2]], `${key} shape`);
      const got = blockLog10ProbScale(zi, s, opts);
      // The counts are integers, so these must agree to float64 precision (rtol 1e-9); -inf must match.
      for (let i = 0; i < expected.length; i++) {
        if (!Number.isFinite(expected[i]!)) assert.equal(got[i], expected[i], `${key}[${i}]`);
      }
      assertClose(got, expected, { rtol: 1e-9, atol: 0, what: key });
      // Non-trivial data: the map must not be constant.
      assert.ok(Math.min(...expected) < Math.max(...expected) - 1, `${key} is not informative`);
    });

    const score = negLogNfaBlock(z, opts);
    const expected = g.get64(file, 'neg_log_nfa_block');
    assert.equal(score.length, expected.length);
    assertClose(score, expected, { rtol: 0, atol: 1e-3, what: 'neg_log_nfa_block' });
    const det = expected.filter((v) => v > 0).length;
    console.log(`${name}: block max|Δ| = ${maxAbsDiff(score, expected).toExponential(2)}, ${det}/${expected.length} detected pixels`);
  });
}
