/**
 * False alarms of a detection on normal images: what the a-contrario promise (NFA < 1 ⇒ fewer
 * than one false detection per normal image on average) is measured by.
 *
 * A detection is −log10 NFA > thr (thr = 0 is log NFA < 0); its regions are the 8-connected
 * components of the detected pixels. For a set of normal images: the mean number of regions per
 * image, the worst image, the fraction of images with any detection and the fraction of pixels
 * flagged.
 */
import { label8 } from './components.js';

export interface FalseAlarmStats {
  images: number;
  /** Mean detected regions per image. */
  meanRegions: number;
  /** The image with the most regions (index into the input) and its count. */
  worst: { index: number; regions: number } | null;
  /** Fraction of images with at least one detection. */
  imagesWithDetections: number;
  /** Fraction of all pixels detected. */
  pixelFraction: number;
}

/** Regions and detected pixels of one map at a threshold. */
export function detectionRegions(negLogNfa: ArrayLike<number>, h: number, w: number, thr = 0): { regions: number; pixels: number; labels: Int32Array; sizes: Int32Array } {
  const det = new Uint8Array(h * w);
  let pixels = 0;
  for (let i = 0; i < det.length; i++) {
    if (negLogNfa[i]! > thr) {
      det[i] = 1;
      pixels++;
    }
  }
  const c = label8(det, 1, h, w);
  return { regions: c.count, pixels, labels: c.labels, sizes: c.sizes };
}

export function falseAlarmStats(maps: readonly ArrayLike<number>[], h: number, w: number, thr = 0): FalseAlarmStats {
  if (!maps.length) return { images: 0, meanRegions: 0, worst: null, imagesWithDetections: 0, pixelFraction: 0 };
  let regions = 0;
  let pixels = 0;
  let any = 0;
  let worst = { index: 0, regions: -1 };
  maps.forEach((m, i) => {
    const r = detectionRegions(m, h, w, thr);
    regions += r.regions;
    pixels += r.pixels;
    if (r.regions > 0) any++;
    if (r.regions > worst.regions) worst = { index: i, regions: r.regions };
  });
  return { images: maps.length, meanRegions: regions / maps.length, worst, imagesWithDetections: any / maps.length, pixelFraction: pixels / (maps.length * h * w) };
}

/** The thresholds of the official oracle mIoU: −400 … 1000, step 1. */
export const ORACLE_THRESHOLDS = Array.from({ length: 1401 }, (_, i) => i - 400);
