/**
 * The dataset report: what a training or an evaluation will use, what it skips and why, and what
 * is wrong with the masks, decided before any work starts.
 *
 * Every file of the splits a job reads is looked at once (no silence):
 *
 * | problem                                   | kind            | train                         | evaluate                      |
 * |-------------------------------------------|-----------------|-------------------------------|-------------------------------|
 * | not an image (README.txt, .gif, …)        | not-image       | skipped, warned               | skipped, warned               |
 * | not a regular file (FIFO, socket, device) | not-a-file      | skipped, warned               | skipped, warned               |
 * | a folder inside an image folder           | subfolder       | skipped (not read), warned    | skipped (not read), warned    |
 * | symbolic link loop / dangling link        | symlink-loop / broken-link | skipped, warned    | skipped, warned               |
 * | unreadable (permission), corrupt          | unreadable      | refused                       | refused                       |
 * | larger than the pixel limit               | too-large       | refused                       | refused                       |
 * | smaller than the input size allows        | too-small       | skipped, warned               | skipped, warned               |
 * | same bytes as an earlier image (a split)  | duplicate       | skipped, warned               | skipped, warned               |
 * | defect image without a mask               | mask-missing    | warned, left out of validation | refused (allowMaskProblems: left out, listed) |
 * | mask of another size than its image       | mask-size       | warned, left out of validation | refused (allowMaskProblems: left out, listed) |
 * | mask that cannot be read                  | mask-unreadable | warned, left out of validation | refused (allowMaskProblems: left out, listed) |
 * | mask not binary (more than two levels)    | mask-not-binary | warned (binarised at > 0)     | warned (binarised at > 0)     |
 * | defect image whose mask is all zero       | mask-empty      | warned                        | warned                        |
 * | a mask for a good image (ground_truth/good) | mask-for-good | warned (ignored)              | warned (ignored)              |
 *
 * "Too small": the shorter side is under `minImageSide(inputSize)` = max(4, ⌈inputSize / 8⌉)
 * pixels: such an image would be blown up more than 8× (a 1×1 image is a colour, not a picture).
 * Duplicates are found by SHA-256 of the file bytes, within one split (the first by name is kept).
 * Hidden files (name starting with '.') are ignored, as everywhere in the dataset code.
 *
 * The lists returned (`train`, `test`) are exactly what the job will use, in `listSplit` order.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, type Dirent } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { describeError, isErrnoError } from '../io/fs-errors.js';
import { findMask, type SplitItem } from './dataset.js';
import { decodeImageBytes, ImageError, isImagePath, readImageHeader, type ImageHeader } from './images.js';
import { formatSize, sizeForConfig, toHW, type SizeInput } from '../size.js';

export type IssueKind =
  | 'not-image'
  | 'not-a-file'
  | 'subfolder'
  | 'symlink-loop'
  | 'broken-link'
  | 'unreadable'
  | 'too-large'
  | 'too-small'
  | 'duplicate'
  | 'mask-missing'
  | 'mask-size'
  | 'mask-unreadable'
  | 'mask-not-binary'
  | 'mask-empty'
  | 'mask-for-good';

export interface ReportIssue {
  kind: IssueKind;
  /** refuse: the job does not start; warn: it goes on (the file skipped, excluded or used as said). */
  action: 'refuse' | 'warn';
  /** The offending file (the mask for mask problems, where there is one). */
  path: string;
  /** The image concerned, for mask problems. */
  image?: string;
  /** What happens to the image: skipped (not used), excluded (left out of the metrics), used. */
  effect: 'skipped' | 'excluded' | 'used' | 'refused';
  message: string;
}

export interface SplitCounts {
  /** defect type ('good' or the test/<defect> folder) → images used */
  [defect: string]: number;
}

export interface DatasetReport {
  purpose: 'train' | 'evaluate';
  categoryDir: string;
  /** One integer (square) or [height, width], as the config holds it. */
  inputSize: number | [number, number];
  createdAt: string;
  /** Images used per split and defect type. */
  used: { train?: SplitCounts; test?: SplitCounts };
  /** Files skipped, by kind. */
  skipped: Partial<Record<IssueKind, number>>;
  masks: { checked: number; missing: number; sizeMismatch: number; unreadable: number; notBinary: number; empty: number; forGood: number };
  issues: ReportIssue[];
  /** True when an issue refuses the job. */
  refused: boolean;
}

export interface ReportOptions {
  purpose: 'train' | 'evaluate';
  inputSize: SizeInput;
  /** Read the train split (default: purpose 'train'). */
  train?: boolean;
  /** Read the test split with its masks (default: purpose 'evaluate'). */
  test?: boolean;
  /** evaluate: images with a missing / mis-sized / unreadable mask are excluded (and listed) instead of refusing. */
  allowMaskProblems?: boolean;
}

export interface ReportResult {
  report: DatasetReport;
  train: SplitItem[];
  test: SplitItem[];
}

export function minImageSide(inputSize: SizeInput): number {
  return Math.max(4, Math.ceil(Math.min(...toHW(inputSize)) / 8));
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export const ReportMessages = {
  notImage: (p: string) => `${p}: not an image (expected .png, .jpg, .jpeg, .bmp, .tif, .tiff): skipped`,
  notAFile: (p: string) => `${p}: not a regular file (a pipe, socket or device): skipped; remove it`,
  subfolder: (p: string) => `${p}: a folder inside an image folder is not read: skipped; move its images up or remove it`,
  symlinkLoop: (p: string) => `${p}: a symbolic link loop (the link leads back to itself): skipped; fix or remove the link`,
  brokenLink: (p: string) => `${p}: a symbolic link to nothing (its target is gone): skipped; fix or remove the link`,
  tooSmall: (p: string, w: number, h: number, min: number, input: SizeInput) =>
    `${p}: image too small (${w}×${h}; at least ${min} pixels a side for input size ${formatSize(input)}): skipped; replace it or lower model.input_size`,
  duplicate: (p: string, first: string) => `${p}: the same bytes as ${first} (a duplicate): skipped; remove one of them`,
  maskMissing: (img: string, expected: string, allowed: boolean, purpose: string) =>
    `${img}: defect image without a mask: expected ${expected} (white = defect); ${
      purpose === 'train' ? 'left out of validation' : allowed ? 'excluded from the evaluation' : 'add the mask, remove the image, or pass --allow-mask-problems to evaluate without it'
    }`,
  maskSize: (mask: string, mw: number, mh: number, img: string, w: number, h: number, allowed: boolean, purpose: string) =>
    `${mask}: mask is ${mw}×${mh} but its image ${img} is ${w}×${h}; ${
      purpose === 'train' ? 'the image is left out of validation' : allowed ? 'the image is excluded from the evaluation' : 'make the mask the same size as the image, or pass --allow-mask-problems to evaluate without it'
    }`,
  maskUnreadable: (mask: string, why: string, allowed: boolean, purpose: string) =>
    `${why}; the mask ${mask} cannot be used: ${purpose === 'train' ? 'its image is left out of validation' : allowed ? 'its image is excluded from the evaluation' : 'replace it, or pass --allow-mask-problems to evaluate without it'}`,
  maskNotBinary: (mask: string, levels: number, between: number, total: number) =>
    `${mask}: mask is not binary (${levels} grey levels; ${between} of ${total} pixels are neither black nor the brightest value): every pixel > 0 counts as defect; save it with only 0 and 255`,
  maskEmpty: (mask: string, img: string) => `${mask}: the mask of defect image ${img} is all black (no defect pixels): the image counts for image AUROC only; draw the defect or move the image to test/good`,
  maskForGood: (mask: string, img: string) => `${mask}: a mask for the good image ${img}: ignored (good images have no defect); remove it or move the image to a defect folder`,
};

interface Entry {
  path: string;
  kind: 'file' | 'dir' | 'loop' | 'broken' | 'other';
}

/** Non-hidden entries of a folder, sorted by name, with symbolic links followed. */
function listEntries(dir: string): Entry[] {
  let ents: Dirent[];
  try {
    ents = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: Entry[] = [];
  for (const e of ents.filter((x) => !x.name.startsWith('.')).sort((a, b) => byName(a.name, b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push({ path: p, kind: 'dir' });
    else if (e.isFile()) out.push({ path: p, kind: 'file' });
    else if (e.isSymbolicLink()) {
      try {
        const st = statSync(p);
        out.push({ path: p, kind: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        out.push({ path: p, kind: code === 'ELOOP' ? 'loop' : 'broken' });
      }
    } else out.push({ path: p, kind: 'other' });
  }
  return out;
}

const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

const isMvtec = (cat: string) => ['train', 'test', 'ground_truth'].some((d) => isDir(join(cat, d)));

class Builder {
  readonly issues: ReportIssue[] = [];
  readonly skipped: Partial<Record<IssueKind, number>> = {};
  readonly masks = { checked: 0, missing: 0, sizeMismatch: 0, unreadable: 0, notBinary: 0, empty: 0, forGood: 0 };

  add(issue: ReportIssue): void {
    this.issues.push(issue);
    if (issue.effect === 'skipped') this.skipped[issue.kind] = (this.skipped[issue.kind] ?? 0) + 1;
  }
}

interface Checked {
  header: ImageHeader;
  bytes: Buffer;
}

/** Reads and checks one image; undefined when it is skipped or refused (the issue recorded). */
async function checkImage(path: string, b: Builder, minSide: number, inputSize: SizeInput, seen: Map<string, string>): Promise<Checked | undefined> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    b.add({ kind: 'unreadable', action: 'refuse', effect: 'refused', path, message: `${describeError(e)}` });
    return undefined;
  }
  let header: ImageHeader;
  try {
    header = await readImageHeader(path, bytes);
  } catch (e) {
    const msg = e instanceof ImageError ? e.message : describeError(e);
    b.add({ kind: /too large/.test(msg) ? 'too-large' : 'unreadable', action: 'refuse', effect: 'refused', path, message: msg });
    return undefined;
  }
  const hash = createHash('sha256').update(bytes).digest('hex');
  const first = seen.get(hash);
  if (first) {
    b.add({ kind: 'duplicate', action: 'warn', effect: 'skipped', path, message: ReportMessages.duplicate(path, first) });
    return undefined;
  }
  seen.set(hash, path);
  if (Math.min(header.width, header.height) < minSide) {
    b.add({ kind: 'too-small', action: 'warn', effect: 'skipped', path, message: ReportMessages.tooSmall(path, header.width, header.height, minSide, inputSize) });
    return undefined;
  }
  return { header, bytes };
}

/** The image files of one folder after the entry-level checks (non-image, links). */
function imageFiles(dir: string, b: Builder): string[] {
  const out: string[] = [];
  for (const e of listEntries(dir)) {
    if (e.kind === 'dir') b.add({ kind: 'subfolder', action: 'warn', effect: 'skipped', path: e.path, message: ReportMessages.subfolder(e.path) });
    else if (e.kind === 'other') b.add({ kind: 'not-a-file', action: 'warn', effect: 'skipped', path: e.path, message: ReportMessages.notAFile(e.path) });
    if (e.kind === 'loop') b.add({ kind: 'symlink-loop', action: 'warn', effect: 'skipped', path: e.path, message: ReportMessages.symlinkLoop(e.path) });
    else if (e.kind === 'broken') b.add({ kind: 'broken-link', action: 'warn', effect: 'skipped', path: e.path, message: ReportMessages.brokenLink(e.path) });
    else if (e.kind === 'file') {
      if (isImagePath(e.path)) out.push(e.path);
      else b.add({ kind: 'not-image', action: 'warn', effect: 'skipped', path: e.path, message: ReportMessages.notImage(e.path) });
    }
  }
  return out;
}

/** Grey levels of a mask (max over channels): how many distinct, and how many pixels are neither 0 nor the maximum. */
function maskLevels(data: Uint8Array, n: number): { levels: number; between: number; max: number } {
  const hist = new Uint32Array(256);
  for (let i = 0; i < n; i++) {
    const r = data[i * 3]!;
    const g = data[i * 3 + 1]!;
    const bl = data[i * 3 + 2]!;
    hist[r > g ? (r > bl ? r : bl) : g > bl ? g : bl]!++;
  }
  let levels = 0;
  let max = 0;
  for (let v = 0; v < 256; v++) if (hist[v]) (levels++, (max = v));
  return { levels, between: n - hist[0]! - (max > 0 ? hist[max]! : 0), max };
}

/** Builds the report and the lists of images the job uses. Throws nothing for problems of files (they are issues). */
export async function buildDatasetReport(categoryDir: string, opts: ReportOptions): Promise<ReportResult> {
  const cat = resolve(categoryDir);
  const b = new Builder();
  const minSide = minImageSide(opts.inputSize);
  const doTrain = opts.train ?? opts.purpose === 'train';
  const doTest = opts.test ?? opts.purpose === 'evaluate';
  const mvtec = isMvtec(cat);
  const train: SplitItem[] = [];
  const test: SplitItem[] = [];
  const used: DatasetReport['used'] = {};

  if (doTrain) {
    const seen = new Map<string, string>();
    const dir = mvtec ? join(cat, 'train', 'good') : cat;
    for (const p of imageFiles(dir, b)) if (await checkImage(p, b, minSide, opts.inputSize, seen)) train.push({ path: p, defect: 'good', label: 0 });
    used.train = { good: train.length };
  }

  if (doTest && mvtec) {
    const seen = new Map<string, string>();
    const counts: SplitCounts = {};
    const maskRefuses = opts.purpose === 'evaluate' && !opts.allowMaskProblems;
    const maskEffect: ReportIssue['effect'] = maskRefuses ? 'refused' : 'excluded';
    const maskAction: ReportIssue['action'] = maskRefuses ? 'refuse' : 'warn';
    const allowed = Boolean(opts.allowMaskProblems);
    for (const d of listEntries(join(cat, 'test')).filter((e) => e.kind === 'dir')) {
      const defect = basename(d.path);
      counts[defect] ??= 0;
      for (const img of imageFiles(d.path, b)) {
        const checked = await checkImage(img, b, minSide, opts.inputSize, seen);
        if (!checked) continue;
        if (defect === 'good') {
          const m = findMask(cat, 'good', img);
          if (m.found) {
            b.masks.forGood++;
            b.add({ kind: 'mask-for-good', action: 'warn', effect: 'used', path: m.found, image: img, message: ReportMessages.maskForGood(m.found, img) });
          }
          test.push({ path: img, defect, label: 0 });
          counts[defect]!++;
          continue;
        }
        const m = findMask(cat, defect, img);
        if (!m.found) {
          b.masks.missing++;
          b.add({ kind: 'mask-missing', action: maskAction, effect: maskEffect, path: img, image: img, message: ReportMessages.maskMissing(img, m.expected, allowed, opts.purpose) });
          continue;
        }
        b.masks.checked++;
        let mh: ImageHeader;
        let mbytes: Buffer;
        try {
          mbytes = readFileSync(m.found);
          mh = await readImageHeader(m.found, mbytes);
        } catch (e) {
          b.masks.unreadable++;
          const why = e instanceof ImageError ? e.message : isErrnoError(e) ? describeError(e) : String(e);
          b.add({ kind: 'mask-unreadable', action: maskAction, effect: maskEffect, path: m.found, image: img, message: ReportMessages.maskUnreadable(m.found, why, allowed, opts.purpose) });
          continue;
        }
        if (mh.width !== checked.header.width || mh.height !== checked.header.height) {
          b.masks.sizeMismatch++;
          b.add({
            kind: 'mask-size',
            action: maskAction,
            effect: maskEffect,
            path: m.found,
            image: img,
            message: ReportMessages.maskSize(m.found, mh.width, mh.height, img, checked.header.width, checked.header.height, allowed, opts.purpose),
          });
          continue;
        }
        try {
          const raw = await decodeImageBytes(mbytes, m.found);
          const n = raw.width * raw.height;
          const lv = maskLevels(raw.data, n);
          if (lv.levels > 2) {
            b.masks.notBinary++;
            b.add({ kind: 'mask-not-binary', action: 'warn', effect: 'used', path: m.found, image: img, message: ReportMessages.maskNotBinary(m.found, lv.levels, lv.between, n) });
          } else if (lv.max === 0) {
            b.masks.empty++;
            b.add({ kind: 'mask-empty', action: 'warn', effect: 'used', path: m.found, image: img, message: ReportMessages.maskEmpty(m.found, img) });
          }
        } catch (e) {
          b.masks.unreadable++;
          b.add({ kind: 'mask-unreadable', action: maskAction, effect: maskEffect, path: m.found, image: img, message: ReportMessages.maskUnreadable(m.found, (e as Error).message, allowed, opts.purpose) });
          continue;
        }
        test.push({ path: img, defect, label: 1, maskPath: m.found });
        counts[defect]!++;
      }
    }
    used.test = counts;
  } else if (doTest) {
    used.test = {};
  }

  const report: DatasetReport = {
    purpose: opts.purpose,
    categoryDir: cat,
    inputSize: sizeForConfig(opts.inputSize),
    createdAt: new Date().toISOString(),
    used,
    skipped: b.skipped,
    masks: b.masks,
    issues: b.issues,
    refused: b.issues.some((i) => i.action === 'refuse'),
  };
  return { report, train, test };
}
