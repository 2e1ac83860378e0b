/**
 * The initial weights that `uflow train` starts from for a config and a seed, as a checkpoint
 * with the reference state-dict names, so that bench/reference/uflow_official.py can train the
 * PyTorch reference from exactly the same starting point (`--init FILE`):
 *
 *   npx tsx bench/reference/dump_init_state.ts -cat metal_plate -config configs/mobilenet-metal_plate.yaml --seed 0 OUT.safetensors
 *
 * The model is built by the same createModel call as the trainer (server/train.ts), on the
 * cpu backend (initial values do not depend on the backend).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initEngine } from '../../models/engine.js';
import { createExtractor } from '../../models/backbones/index.js';
import { createModel, saveModelCheckpoint } from '../../models/model-factory.js';
import { loadConfig } from '../../server/config.js';

const argv = yargs(hideBin(process.argv))
  .parserConfiguration({ 'short-option-groups': false })
  .option('cat', { type: 'string', demandOption: true })
  .option('config', { type: 'string' })
  .option('seed', { type: 'number' })
  .demandCommand(1, 'name the output file')
  .strict()
  .parseSync();

await initEngine({ backend: 'cpu' });
const cfg = loadConfig({ category: argv.cat, path: argv.config, overrides: argv.seed === undefined ? undefined : { trainer: { seed: argv.seed } } });
const m = cfg.model;
const extractor = await createExtractor({ backbone: m.backbone, inputSize: m.input_size, layers: m.backbone_layers, inputRange: m.backbone_input_range });
const model = createModel('uflow', m, extractor, { seed: cfg.trainer.seed });
const out = String(argv._[0]);
saveModelCheckpoint(out, model, { epoch: '0' });
console.log(`${out}: initial U-Flow weights for ${argv.cat}, seed ${cfg.trainer.seed} (${model.trainableVariables().length} trainable tensors)`);
model.dispose();
extractor.dispose();
