/** Job kind → handler: one file per kind. */
import type { QueueJobKind } from '../types.js';
import type { JobHandler } from './context.js';
import { evaluateJob } from './evaluate.js';
import { exportJob } from './export.js';
import { predictJob } from './predict.js';
import { trainJob } from './train.js';

export const JOB_HANDLERS: Record<QueueJobKind, JobHandler> = {
  train: trainJob as JobHandler,
  evaluate: evaluateJob as JobHandler,
  predict: predictJob as JobHandler,
  export: exportJob as JobHandler,
};
