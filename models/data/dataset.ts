/**
 * Dataset discovery and validation.
 *
 * Layouts (detected in this order):
 * - MVTec category: a folder with `train/good` (plus, optionally, `test/<defect>` and
 *   `ground_truth/<defect>/<name>_mask.png`);
 * - MVTec root: a folder whose sub-folders are categories;
 * - plain folder: image files directly in the folder, all treated as normal training images
 *   (no test split, so no evaluation).
 *
 * `inspectDataset` lists every category with its counts and reports problems (severity, path and a
 * message that says the fix) instead of throwing, so a view can show them all at once. It reads
 * only image headers (plus a cheap end-of-file check for truncation), so a dataset of a thousand
 * images inspects in well under a second. Counts are of image files found; a file reported as
 * unreadable is still counted (training on it fails with the same message), so counts always
 * agree with `listSplit`.
 *
 * Masks: `ground_truth/<defect>/<stem>_mask.png`; also accepted: `<stem>_mask` with any image
 * extension, and `<stem>.png` (a few MVTec-like datasets name masks after their image).
 * Hidden files and folders (name starting with '.') are ignored everywhere.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { basename, extname, join, relative, resolve, sep } from 'node:path';
import type { CategoryInfo, DatasetInfo, DatasetProblem } from './types.js';
import { IMAGE_EXTENSIONS, ImageError, isImagePath, readImageHeader, type ImageHeader } from './images.js';

/** The dataset path itself is unusable (missing, not a folder). */
export class DatasetError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'DatasetError';
  }
}

export interface SplitItem {
  path: string;
  /** 'good' or the defect type (the folder name under test/). */
  defect: string;
  label: 0 | 1;
  /** For defect images whose mask exists. */
  maskPath?: string;
}

const EXT_LIST = IMAGE_EXTENSIONS.join(', ');

export const Messages = {
  noTrainGood: (dir: string, name: string) =>
    `${dir}: no train/good folder: an MVTec category needs ${name}/train/good/*.png (or point at a plain folder of normal images)`,
  emptyTrainGood: (dir: string) => `${dir}: empty folder: put the normal (defect-free) training images here`,
  emptyFolder: (dir: string) => `${dir}: empty folder: add images or remove the folder`,
  emptyDataset: (dir: string) =>
    `${dir}: empty folder: add normal images, or an MVTec category (<category>/train/good, test/<defect>, ground_truth/<defect>)`,
  notImage: (file: string) => `${file}: not an image (expected ${EXT_LIST}): skipped`,
  strayTestFile: (file: string) => `${file}: test images go in test/good or test/<defect>/: move it into one (skipped)`,
  noTest: (dir: string) => `${dir}: no test folder: evaluation needs test/good and test/<defect> images (training works without)`,
  missingMask: (image: string, expected: string) =>
    `${image}: defect image without a mask: expected ${expected} (white = defect); add it or remove the image`,
  maskSize: (mask: string, mw: number, mh: number, image: string, w: number, h: number) =>
    `${mask}: mask is ${mw}×${mh} but its image ${image} is ${w}×${h}: make the mask the same size as the image`,
};

const isHidden = (name: string) => name.startsWith('.');
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function entries(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => !isHidden(e.name))
      .sort((a, b) => byName(a.name, b.name));
  } catch {
    return [];
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFileEntry(dir: string, e: Dirent): boolean {
  if (e.isFile()) return true;
  if (e.isSymbolicLink()) {
    try {
      return statSync(join(dir, e.name)).isFile();
    } catch {
      return false;
    }
  }
  return false;
}

function isDirEntry(dir: string, e: Dirent): boolean {
  return e.isDirectory() || (e.isSymbolicLink() && isDir(join(dir, e.name)));
}

/** Image files (sorted) and other files of a folder. */
function scanFolder(dir: string): { images: string[]; others: string[]; subdirs: string[] } {
  const images: string[] = [];
  const others: string[] = [];
  const subdirs: string[] = [];
  for (const e of entries(dir)) {
    const p = join(dir, e.name);
    if (isDirEntry(dir, e)) subdirs.push(p);
    else if (isFileEntry(dir, e)) (isImagePath(e.name) ? images : others).push(p);
  }
  return { images, others, subdirs };
}

/** The mask of a defect image, if present, and the path we expect it at. */
export function findMask(categoryDir: string, defect: string, imagePath: string): { found?: string; expected: string } {
  const stem = basename(imagePath, extname(imagePath));
  const gt = join(categoryDir, 'ground_truth', defect);
  const expected = join(gt, `${stem}_mask.png`);
  if (existsSync(expected)) return { found: expected, expected };
  for (const ext of IMAGE_EXTENSIONS) {
    for (const cand of [join(gt, `${stem}_mask${ext}`), join(gt, `${stem}_mask${ext.toUpperCase()}`)]) if (existsSync(cand)) return { found: cand, expected };
  }
  const same = join(gt, `${stem}.png`);
  if (existsSync(same)) return { found: same, expected };
  return { expected };
}

// ---------------------------------------------------------------------------------------------
// Layout detection

export interface Layout {
  layout: DatasetInfo['layout'];
  /** Category folders (absolute), sorted by name. */
  categories: string[];
}

const hasTrainGood = (dir: string) => isDir(join(dir, 'train', 'good'));
const looksLikeCategory = (dir: string) => ['train', 'test', 'ground_truth'].some((d) => isDir(join(dir, d)));

function checkFolder(path: string): string {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new DatasetError(abs, `${abs}: no such folder: check the dataset path`);
  if (!isDir(abs)) throw new DatasetError(abs, `${abs}: not a folder: point at a dataset folder (an MVTec root, an MVTec category or a folder of images)`);
  return abs;
}

/** The layout and category folders, without validating files. Throws DatasetError for a missing path. */
export function detectLayout(path: string): Layout {
  const abs = checkFolder(path);
  if (hasTrainGood(abs) || looksLikeCategory(abs)) return { layout: 'mvtec-category', categories: [abs] };
  const { images, subdirs } = scanFolder(abs);
  const cats = subdirs.filter(hasTrainGood);
  if (cats.length > 0) return { layout: 'mvtec-root', categories: cats };
  if (images.length > 0) return { layout: 'folder', categories: [abs] };
  return { layout: 'folder', categories: [] };
}

// ---------------------------------------------------------------------------------------------
// Listing

/**
 * The images of one split of a category folder (an MVTec category, or a plain folder of images:
 * all 'train', no 'test'), in a deterministic order: defect folders by name, then files by name
 * (code-point order, as Python's `sorted`). Non-image and hidden files are left out.
 */
export function listSplit(category: string, split: 'train' | 'test'): SplitItem[] {
  const cat = resolve(category);
  if (!hasTrainGood(cat) && !looksLikeCategory(cat)) {
    if (split === 'test') return [];
    return scanFolder(cat).images.map((p) => ({ path: p, defect: 'good', label: 0 as const }));
  }
  if (split === 'train') {
    return scanFolder(join(cat, 'train', 'good')).images.map((p) => ({ path: p, defect: 'good', label: 0 as const }));
  }
  const out: SplitItem[] = [];
  for (const dir of scanFolder(join(cat, 'test')).subdirs) {
    const defect = basename(dir);
    for (const p of scanFolder(dir).images) {
      if (defect === 'good') out.push({ path: p, defect, label: 0 });
      else {
        const m = findMask(cat, defect, p);
        out.push(m.found ? { path: p, defect, label: 1, maskPath: m.found } : { path: p, defect, label: 1 });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Inspection

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

type HeaderResult = { header?: ImageHeader; error?: string };

async function headerOf(path: string): Promise<HeaderResult> {
  try {
    return { header: await readImageHeader(path) };
  } catch (e) {
    return { error: e instanceof ImageError ? e.message : `${path}: ${(e as Error).message}` };
  }
}

interface CategoryScan {
  info: CategoryInfo;
  /** Images whose header must be read. */
  files: string[];
  /** [image, mask] pairs whose sizes must agree. */
  pairs: Array<[string, string]>;
}

function scanCategory(cat: string, problems: DatasetProblem[]): CategoryScan {
  const name = basename(cat);
  const info: CategoryInfo = { name, path: cat, trainGood: 0, testGood: 0, defects: {}, masks: 0 };
  const files: string[] = [];
  const pairs: Array<[string, string]> = [];
  const warnOthers = (others: string[]) => {
    for (const o of others) problems.push({ severity: 'warning', path: o, message: Messages.notImage(o) });
  };

  const trainGood = join(cat, 'train', 'good');
  if (!isDir(trainGood)) {
    problems.push({ severity: 'error', path: cat, message: Messages.noTrainGood(cat, name) });
  } else {
    const s = scanFolder(trainGood);
    warnOthers(s.others);
    if (s.images.length === 0) problems.push({ severity: 'error', path: trainGood, message: Messages.emptyTrainGood(trainGood) });
    info.trainGood = s.images.length;
    files.push(...s.images);
  }

  const test = join(cat, 'test');
  if (!isDir(test)) {
    if (isDir(trainGood)) problems.push({ severity: 'warning', path: cat, message: Messages.noTest(cat) });
  } else {
    const top = scanFolder(test);
    for (const f of [...top.images, ...top.others]) problems.push({ severity: 'warning', path: f, message: Messages.strayTestFile(f) });
    for (const dir of top.subdirs) {
      const defect = basename(dir);
      const s = scanFolder(dir);
      warnOthers(s.others);
      if (s.images.length === 0) {
        problems.push({ severity: 'warning', path: dir, message: Messages.emptyFolder(dir) });
        continue;
      }
      files.push(...s.images);
      if (defect === 'good') {
        info.testGood += s.images.length;
        continue;
      }
      info.defects[defect] = s.images.length;
      for (const img of s.images) {
        const m = findMask(cat, defect, img);
        if (!m.found) {
          problems.push({ severity: 'warning', path: img, message: Messages.missingMask(img, m.expected) });
        } else {
          info.masks++;
          pairs.push([img, m.found]);
        }
      }
    }
  }
  const gt = join(cat, 'ground_truth');
  if (isDir(gt)) for (const dir of scanFolder(gt).subdirs) warnOthers(scanFolder(dir).others);
  return { info, files, pairs };
}

export interface InspectOptions {
  /** Concurrent header reads (default 16). */
  concurrency?: number;
}

/**
 * Finds the layout and categories of a dataset folder, counts images per split and defect type,
 * and reports problems (see `Messages`). Throws DatasetError only when the path is missing or not
 * a folder.
 */
export async function inspectDataset(path: string, opts: InspectOptions = {}): Promise<DatasetInfo> {
  const abs = checkFolder(path);
  const problems: DatasetProblem[] = [];
  const { layout, categories } = detectLayout(abs);
  const scans: CategoryScan[] = [];

  if (layout === 'folder') {
    const s = scanFolder(abs);
    if (s.images.length === 0) {
      if (s.others.length === 0 && s.subdirs.length === 0) problems.push({ severity: 'error', path: abs, message: Messages.emptyDataset(abs) });
      else problems.push({ severity: 'error', path: abs, message: Messages.noTrainGood(abs, basename(abs)) });
    } else {
      for (const o of s.others) problems.push({ severity: 'warning', path: o, message: Messages.notImage(o) });
      scans.push({
        info: { name: basename(abs), path: abs, trainGood: s.images.length, testGood: 0, defects: {}, masks: 0 },
        files: s.images,
        pairs: [],
      });
    }
  } else {
    if (layout === 'mvtec-root') {
      // Sub-folders that look like categories but have no train/good, and empty sub-folders.
      for (const dir of scanFolder(abs).subdirs) {
        if (hasTrainGood(dir)) continue;
        if (looksLikeCategory(dir)) problems.push({ severity: 'error', path: dir, message: Messages.noTrainGood(dir, basename(dir)) });
        else if (entries(dir).length === 0) problems.push({ severity: 'warning', path: dir, message: Messages.emptyFolder(dir) });
      }
    }
    for (const cat of categories) scans.push(scanCategory(cat, problems));
  }

  // Header reads: every image once (masks too), concurrently.
  const all = new Set<string>();
  for (const s of scans) {
    for (const f of s.files) all.add(f);
    for (const [, m] of s.pairs) all.add(m);
  }
  const list = [...all];
  const results = await mapLimit(list, opts.concurrency ?? 16, headerOf);
  const headers = new Map<string, HeaderResult>();
  list.forEach((p, i) => headers.set(p, results[i]));
  for (const p of list) {
    const r = headers.get(p)!;
    if (r.error) problems.push({ severity: 'error', path: p, message: r.error });
  }
  for (const s of scans) {
    for (const [img, mask] of s.pairs) {
      const a = headers.get(img)?.header;
      const b = headers.get(mask)?.header;
      if (a && b && (a.width !== b.width || a.height !== b.height)) {
        problems.push({ severity: 'error', path: mask, message: Messages.maskSize(mask, b.width, b.height, img, a.width, a.height) });
      }
    }
  }
  problems.sort((x, y) => byName(x.path, y.path) || (x.severity === y.severity ? 0 : x.severity === 'error' ? -1 : 1));
  return { path: abs, layout, categories: scans.map((s) => s.info), problems };
}

// ---------------------------------------------------------------------------------------------
// Fingerprint

/**
 * A short hash of every file under the folder (relative path, size, mtime in ms), hidden files and
 * folders excluded: it changes when a file is added, removed, replaced or touched.
 */
export function datasetFingerprint(path: string): string {
  const root = checkFolder(path);
  const lines: string[] = [];
  const seen = new Set<string>();
  const walk = (dir: string) => {
    const real = realpathSync(dir);
    if (seen.has(real)) return; // a symbolic link loop
    seen.add(real);
    for (const e of entries(dir)) {
      const p = join(dir, e.name);
      if (isDirEntry(dir, e)) walk(p);
      else if (isFileEntry(dir, e)) {
        const st = statSync(p);
        lines.push(`${relative(root, p).split(sep).join('/')}\t${st.size}\t${Math.round(st.mtimeMs)}`);
      }
    }
  };
  walk(root);
  lines.sort(byName);
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
}
