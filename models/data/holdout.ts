/**
 * The held-out split of train/good: normal images kept out of training so that the detection
 * threshold can be calibrated (and its false-alarm rate measured) on normal images the flow has
 * never seen. A dataset with no labelled test set still gets both.
 *
 * Selection is by a seeded hash of each image's name (not of its position in the listing): the
 * same seed picks the same images whatever order the files are listed in, and adding an image
 * to the folder moves at most that image in or out.
 *
 * Size: max(min, round(fraction · N)), but never more than half of the images, and none when
 * fewer than 4 training images exist (too few to both train and calibrate).
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';

export interface HoldoutOptions {
  /** Fraction of train/good to hold out (0 turns it off). */
  fraction: number;
  /** At least this many images (when the dataset allows). */
  min: number;
  seed: number;
}

/** How many of `n` training images are held out. */
export function holdoutCount(n: number, opts: Pick<HoldoutOptions, 'fraction' | 'min'>): number {
  if (!(opts.fraction > 0) || n < 4) return 0;
  const want = Math.max(opts.min, Math.round(opts.fraction * n));
  return Math.min(want, Math.floor(n / 2));
}

function rank(seed: number, name: string): string {
  return createHash('sha256').update(`${seed}\u0000${name}`).digest('hex');
}

/**
 * Splits `items` (anything with a `path`) into the images to train on and the held-out ones.
 * Both keep the input order.
 */
export function splitHoldout<T extends { path: string }>(items: readonly T[], opts: HoldoutOptions): { train: T[]; holdout: T[] } {
  const k = holdoutCount(items.length, opts);
  if (k === 0) return { train: [...items], holdout: [] };
  const keyed = items.map((it, i) => ({ i, key: rank(opts.seed, basename(it.path)) + rank(opts.seed, it.path) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i));
  const chosen = new Set(keyed.slice(0, k).map((e) => e.i));
  return { train: items.filter((_, i) => !chosen.has(i)), holdout: items.filter((_, i) => chosen.has(i)) };
}

/** Splits by a recorded list of held-out file names (a resumed or re-evaluated run keeps its split). */
export function splitByNames<T extends { path: string }>(items: readonly T[], names: readonly string[]): { train: T[]; holdout: T[] } {
  const set = new Set(names);
  return { train: items.filter((it) => !set.has(basename(it.path))), holdout: items.filter((it) => set.has(basename(it.path))) };
}
