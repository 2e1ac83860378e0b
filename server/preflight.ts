/**
 * Checks of a resolved run configuration against the disk, made before a run folder is created:
 * a `tfjs:<dir>` backbone must be a folder holding model.json. (Config validation itself,
 * server/config.ts, stays pure.)
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RunConfig } from './protocol.js';
import { PipelineError } from './runs.js';

export function preflightConfig(cfg: RunConfig, configPath?: string): void {
  const b = cfg.model.backbone;
  if (!b.startsWith('tfjs:')) return;
  const dir = b.slice('tfjs:'.length);
  const from = configPath ? ` (model.backbone in ${configPath})` : ' (model.backbone)';
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new PipelineError(`${dir}: no such folder${from}: point tfjs: at the folder holding the model's model.json and weight files`, 'BadDataset');
  }
  if (!isDir) throw new PipelineError(`${dir}: not a folder${from}: point tfjs: at the folder holding model.json, not at a file`, 'BadDataset');
  if (!existsSync(join(dir, 'model.json'))) throw new PipelineError(`${dir}: no model.json in this folder${from}: point tfjs: at a TensorFlow.js layers model (model.json and its weight files)`, 'BadDataset');
}
