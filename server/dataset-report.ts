/**
 * The dataset report in a job (models/data/dataset-report.ts does the checks): built at the start
 * of train and evaluate, recorded in the run folder (`dataset-report.<purpose>.json`, atomic),
 * handed to the caller (the CLI prints it, the daemon sends it as `uflow/datasetReport`), and a
 * refusal turned into a PipelineError whose message names every offending file.
 */
import { join } from 'node:path';
import { atomicWriteJson } from '../models/io/atomic.js';
import { buildDatasetReport, type DatasetReport, type ReportIssue } from '../models/data/dataset-report.js';
import type { SplitItem } from '../models/data/dataset.js';
import { PipelineError } from './runs.js';
import { describeError } from '../models/io/fs-errors.js';
import { formatSize, type SizeInput } from '../models/size.js';

export type { DatasetReport, ReportIssue };

export const DATASET_REPORT_FILE = (purpose: DatasetReport['purpose']) => `dataset-report.${purpose}.json`;

/** The notification the daemon sends with a report (method `uflow/datasetReport`). */
export const DATASET_REPORT_METHOD = 'uflow/datasetReport';

export interface DatasetReportNotification {
  runId: string;
  jobId?: string;
  report: DatasetReport;
  /** The report as the CLI prints it. */
  text: string;
}

const KIND_WORDS: Record<ReportIssue['kind'], string> = {
  'not-image': 'not an image',
  'not-a-file': 'not a regular file',
  subfolder: 'subfolder',
  'symlink-loop': 'symlink loop',
  'broken-link': 'broken symlink',
  unreadable: 'unreadable',
  'too-large': 'too large',
  'too-small': 'too small',
  duplicate: 'duplicate',
  'mask-missing': 'mask missing',
  'mask-size': 'mask size mismatch',
  'mask-unreadable': 'mask unreadable',
  'mask-not-binary': 'mask not binary',
  'mask-empty': 'mask empty',
  'mask-for-good': 'mask for a good image',
};

function counts(c: Record<string, number> | undefined): string {
  if (!c) return '';
  const keys = Object.keys(c).sort((a, b) => (a === 'good' ? -1 : b === 'good' ? 1 : a < b ? -1 : 1));
  return keys.length ? keys.map((k) => `${c[k]} ${k}`).join(', ') : 'none';
}

/** Warnings of one kind shown in the text before the rest are counted (errors are all shown). */
export const WARNINGS_SHOWN_PER_KIND = 5;

/**
 * The report as lines of text (the CLI's summary; the extension's "Show details"). Errors are all
 * listed; warnings up to WARNINGS_SHOWN_PER_KIND of each kind, then how many more there are: a
 * dataset whose 388 masks are all anti-aliased printed 388 lines on every run. Every issue is in
 * the run's dataset-report.<purpose>.json.
 */
export function formatDatasetReport(r: DatasetReport): string {
  const lines = [`dataset report (${r.purpose}) for ${r.categoryDir} at input size ${formatSize(r.inputSize)}:`];
  if (r.used.train) lines.push(`  train: ${counts(r.used.train)}`);
  if (r.used.test) lines.push(`  test:  ${counts(r.used.test)}`);
  const sk = Object.entries(r.skipped);
  const nSkipped = sk.reduce((s, [, n]) => s + (n ?? 0), 0);
  lines.push(`  skipped: ${nSkipped ? `${nSkipped} (${sk.map(([k, n]) => `${n} ${KIND_WORDS[k as ReportIssue['kind']]}`).join(', ')})` : 'none'}`);
  if (r.used.test) {
    const m = r.masks;
    lines.push(`  masks: ${m.checked} checked; ${m.missing} missing, ${m.sizeMismatch} size mismatch, ${m.unreadable} unreadable, ${m.notBinary} not binary, ${m.empty} empty, ${m.forGood} for good images`);
  }
  const excluded = r.issues.filter((i) => i.effect === 'excluded');
  if (excluded.length) lines.push(`  excluded: ${excluded.length} image(s): ${excluded.map((i) => i.image ?? i.path).join(', ')}`);
  const shown = new Map<string, number>();
  for (const i of r.issues) {
    if (i.action === 'refuse') {
      lines.push(`  error: ${i.message}`);
      continue;
    }
    const n = (shown.get(i.kind) ?? 0) + 1;
    shown.set(i.kind, n);
    if (n <= WARNINGS_SHOWN_PER_KIND) lines.push(`  warning: ${i.message}`);
  }
  for (const [kind, n] of shown) {
    if (n > WARNINGS_SHOWN_PER_KIND) {
      lines.push(`  … and ${n - WARNINGS_SHOWN_PER_KIND} more warnings of this kind (${KIND_WORDS[kind as ReportIssue['kind']]}): all are in the run's ${DATASET_REPORT_FILE(r.purpose)}`);
    }
  }
  if (r.refused) lines.push('  refused: fix the errors above first');
  return lines.join('\n');
}

export interface DatasetReportHooks {
  /** Called with every report (refused or not), before any work. */
  onDatasetReport?(report: DatasetReport, text: string): void;
}

export interface JobDatasetOptions extends DatasetReportHooks {
  purpose: DatasetReport['purpose'];
  categoryDir: string;
  inputSize: SizeInput;
  /** Run folder: the report is written there. */
  runDir: string;
  /** train: also read the test split (validation). */
  withTest?: boolean;
  allowMaskProblems?: boolean;
}

/**
 * Builds, records and hands on the report; throws PipelineError('BadDataset') when it refuses.
 * Returns the images to use.
 */
export async function datasetForJob(o: JobDatasetOptions): Promise<{ train: SplitItem[]; test: SplitItem[]; report: DatasetReport }> {
  const { report, train, test } = await buildDatasetReport(o.categoryDir, {
    purpose: o.purpose,
    inputSize: o.inputSize,
    train: o.purpose === 'train',
    test: o.purpose === 'evaluate' || Boolean(o.withTest),
    allowMaskProblems: o.allowMaskProblems,
  });
  let text = formatDatasetReport(report);
  try {
    atomicWriteJson(join(o.runDir, DATASET_REPORT_FILE(o.purpose)), report);
  } catch (e) {
    // Recording is best effort (the report still goes to the caller), but not silent.
    text += `\n  warning: the report could not be recorded: ${describeError(e)}`;
  }
  o.onDatasetReport?.(report, text);
  if (report.refused) {
    const errs = report.issues.filter((i) => i.action === 'refuse');
    const head = `${o.categoryDir}: the dataset report refuses the ${o.purpose === 'train' ? 'training' : 'evaluation'} (${errs.length} problem${errs.length > 1 ? 's' : ''})`;
    throw new PipelineError([head, ...errs.map((i) => `  ${i.message}`)].join('\n'), 'BadDataset');
  }
  return { train, test, report };
}
