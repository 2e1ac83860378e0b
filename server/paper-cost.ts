/**
 * What the paper's configuration (U-Flow on MS-CaiT 448: cait_m48_448 41 blocks + cait_s24_224 21
 * blocks, 4 flow steps) costs on this machine, for `uflow doctor`: per-image figures measured once
 * by `npm run bench -- mscait-full` (bench/mscait-full.bench.ts, which prints the line to paste
 * here), scaled by the ratio of a short matrix-product probe run now to the same probe run then.
 */
import * as tf from '@tensorflow/tfjs-core';
import { freemem } from 'node:os';

export interface PaperCostFigures {
  /** How they were measured: command, machine, load. */
  measured: string;
  backend: string;
  /** Seconds of the MS-CaiT features of one 448² image (computed once per image, then cached). */
  featuresSecPerImage: number;
  /** Seconds of one training step per image of the batch (flow forward + backward + Adam). */
  trainSecPerImage: number;
  /** Seconds of one evaluation per image (features, flow, anomaly map, NFA, PNGs). */
  evalSecPerImage: number;
  /** Peak resident memory of the bench process (load of the released checkpoint, features, step). */
  peakRssGiB: number;
  /** `probeGflops()` on the same engine in the same run. */
  probeGflops: number;
}

/**
 * bench/mscait-full.bench.ts on the 2-core development machine (x86-64, 23 GiB), wasm one thread,
 * 2026-12-05, load average 7–13 from other jobs: the seconds are process CPU seconds (what one
 * unshared thread spends), the peak RSS includes the 1.6 GB checkpoint read whole.
 * Command: `nice -n 10 node --import tsx bench/mscait-full.bench.ts` (`npm run bench -- mscait-full`).
 */
export const PAPER_COST: PaperCostFigures = {
  measured: 'npm run bench -- mscait-full, 2 cores, wasm, load 7.0 9.5 10.1; torch features 203.6 s CPU/image; torch step 6.70 s CPU',
  backend: 'wasm',
  featuresSecPerImage: 62.5,
  trainSecPerImage: 4.19,
  evalSecPerImage: 70.1,
  peakRssGiB: 5.31,
  probeGflops: 27.3,
};

/** The official default schedule (configs: mvtec_default): epochs, and the category size the estimate is for. */
export const PAPER_EPOCHS = 200;
export const CATEGORY_IMAGES = 200;

/**
 * GFLOP/s of a CaiT-sized matrix product (784×768 · 768×2304, a cait_m48 qkv projection) on the
 * engine in use: the best of a few runs after a warm-up (about 0.1–0.5 s on a CPU).
 */
export async function probeGflops(reps = 3): Promise<number> {
  const a = tf.randomUniform([784, 768]) as tf.Tensor2D;
  const b = tf.randomUniform([768, 2304]) as tf.Tensor2D;
  try {
    // The lesser of wall and process CPU time: CPU time for a one-thread engine on a shared
    // machine (other processes do not count), wall time for a multi-threaded one.
    const run = async () => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
      const cpu = process.cpuUsage(c0);
      return Math.min(performance.now() - t0, (cpu.user + cpu.system) / 1000);
    };
    await run();
    let best = Infinity;
    for (let i = 0; i < reps; i++) best = Math.min(best, await run());
    return (2 * 784 * 768 * 2304) / (best / 1000) / 1e9;
  } finally {
    a.dispose();
    b.dispose();
  }
}

export interface PaperEstimate {
  verdict: 'yes' | 'no' | 'slow';
  /** Minutes to train one category (features once, then the epochs; per-epoch validation not counted). */
  minutes: number;
  featuresMinutes: number;
  trainMinutes: number;
  needGiB: number;
  freeGiB: number;
  text: string;
}

/** The paper's configuration on this machine, from the stored figures scaled by `gflopsNow / figures.probeGflops`. */
export function estimatePaperCost(gflopsNow: number, freeBytes: number = freemem(), figures: PaperCostFigures = PAPER_COST): PaperEstimate {
  const speed = gflopsNow > 0 && Number.isFinite(gflopsNow) ? gflopsNow / figures.probeGflops : 1;
  const featuresMinutes = (CATEGORY_IMAGES * figures.featuresSecPerImage) / speed / 60;
  const trainMinutes = (PAPER_EPOCHS * CATEGORY_IMAGES * figures.trainSecPerImage) / speed / 60;
  const minutes = featuresMinutes + trainMinutes;
  const needGiB = figures.peakRssGiB;
  const freeGiB = freeBytes / 2 ** 30;
  const verdict = freeGiB < needGiB ? 'no' : minutes > 60 ? 'slow' : 'yes';
  const fmt = (m: number) => (m >= 120 ? `${(m / 60).toFixed(m >= 1200 ? 0 : 1)} h` : `${Math.round(m)} min`);
  const why =
    verdict === 'no'
      ? `not enough free memory (${freeGiB.toFixed(1)} GiB free)`
      : verdict === 'slow'
        ? `it fits in memory (${freeGiB.toFixed(1)} GiB free) but is far over an hour: train a lighter backbone (e.g. resnet18 at 256) here, or use a GPU backend`
        : `${freeGiB.toFixed(1)} GiB free`;
  const text =
    `MS-CaiT 448 (paper): about ${fmt(minutes)} per ${CATEGORY_IMAGES}-image category here ` +
    `(features ${fmt(featuresMinutes)}, ${PAPER_EPOCHS} epochs ${fmt(trainMinutes)}; estimated from a ${gflopsNow.toFixed(1)} GFLOP/s probe against the bench's ${figures.probeGflops.toFixed(1)} on ${figures.backend}); ` +
    `needs ${needGiB.toFixed(1)} GiB: ${verdict} — ${why}`;
  return { verdict, minutes, featuresMinutes, trainMinutes, needGiB, freeGiB, text };
}
