/** Threshold studies (bench/threshold/variants.ts): the latents a run's detection variants are compared on. */
import type { RunInfo } from './protocol.js';
import { resolve } from 'node:path';
import { loadFeatures } from '../models/train/feature-cache.js';
import { latentsOf } from '../models/train/evaluate.js';
import type { Latent } from '../models/scores/latent.js';
import type { SplitItem } from '../models/data/dataset.js';
import { readRun } from './runs.js';
import { ensureEngine, splitsOf } from './job-common.js';
import { extractorId, buildExtractor, tensorImageLoader, loadValidationData, holdoutItems, checkpointsFor, loadCheckpointChecked } from './run-model.js';

/**
 * The latents of a run's test images (with masks) and of its held-out normal images, from one
 * checkpoint (default: the one mIoU is evaluated with): what the detection variants are compared on.
 */
export async function runLatents(opts: { trainDir: string; runId: string; checkpoint?: string; backend?: string }): Promise<{
  run: RunInfo;
  items: SplitItem[];
  masks: Uint8Array[];
  test: Latent[][];
  holdout: Latent[][];
}> {
  const trainDir = resolve(opts.trainDir);
  const run = readRun(trainDir, opts.runId);
  await ensureEngine(opts.backend);
  const file = opts.checkpoint ?? checkpointsFor(run, 'best').miou;
  const extractor = await buildExtractor(run.config, undefined, () => {});
  try {
    const items = splitsOf(run.datasetPath).test;
    const data = await loadValidationData(items, trainDir, extractor, run.config, undefined);
    const { model } = loadCheckpointChecked(file, extractor);
    try {
      const test = await latentsOf(model, data.features.levels, 8);
      const hItems = holdoutItems(run);
      let holdout: Latent[][] = [];
      if (hItems.length) {
        const feats = await loadFeatures(hItems.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(run.config), loadImage: tensorImageLoader });
        holdout = await latentsOf(model, feats.levels, 8);
        feats.dispose();
      }
      return { run, items, masks: data.masks, test, holdout };
    } finally {
      model.dispose();
      data.features.dispose();
    }
  } finally {
    extractor.dispose();
  }
}
