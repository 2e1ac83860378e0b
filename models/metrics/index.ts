/** Evaluation metrics (spec/metrics.md): AUROC, AUPRO, mIoU, pixel F1. Pure TypeScript. */
export { rocAuc, rocCurve, imageAuroc, imageMaxScores, downsampleCurve, downsampleIndices, type RocCurve } from './roc.js';
export { aupro, type AuproResult } from './aupro.js';
export { MeanIoU, miou, miouOracle, iouFloat32, type MiouResult, type MiouOracle } from './miou.js';
export { pixelF1 } from './f1.js';
export { label8, type Components } from './components.js';
