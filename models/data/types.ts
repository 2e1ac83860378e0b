/**
 * What a dataset inspection reports (models/data/dataset.ts): defined here so that models/ needs
 * nothing from server/; server/protocol.ts re-exports them as part of the daemon's contract.
 */

export interface DatasetProblem {
  severity: 'error' | 'warning';
  /** The file or folder concerned. */
  path: string;
  message: string;
}

export interface CategoryInfo {
  name: string;
  path: string;
  trainGood: number;
  testGood: number;
  /** defect type → number of test images */
  defects: Record<string, number>;
  masks: number;
}

export interface DatasetInfo {
  path: string;
  layout: 'mvtec-root' | 'mvtec-category' | 'folder';
  categories: CategoryInfo[];
  problems: DatasetProblem[];
}
