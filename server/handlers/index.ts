/** The request handlers by method name. */
import { Methods } from '../protocol.js';
import { cancel } from './cancel.js';
import type { Handler } from './context.js';
import { inspectDataset } from './dataset.js';
import { downloadModels } from './download.js';
import { estimate } from './estimate.js';
import { evaluate } from './evaluate.js';
import { exportModel } from './export.js';
import { predict } from './predict.js';
import { runs } from './runs.js';
import { status } from './status.js';
import { train } from './train.js';

export const handlers: Record<string, Handler> = {
  [Methods.status]: status,
  [Methods.inspectDataset]: inspectDataset,
  [Methods.train]: train,
  [Methods.estimate]: estimate,
  [Methods.evaluate]: evaluate,
  [Methods.predict]: predict,
  [Methods.runs]: runs,
  [Methods.cancel]: cancel,
  [Methods.downloadModels]: downloadModels,
  [Methods.export]: exportModel,
};
