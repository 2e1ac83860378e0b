// The workspace the VS Code suites open: the generated demo dataset (models/data/demo-dataset.ts,
// tiny: 64 px images, 8 training images, 5 test images) and workspace settings that make every
// training started from the UI tiny (uflow.trainConfig) and offline (builtin:filters backbone).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../scripts/e2e/harness.mjs';

export const TINY_DEMO = { seed: 7, size: 64, counts: { train: 8, testGood: 2, defects: { hole: 1, scratch: 1, stain: 1 } } };

/** A training that takes seconds: the filter backbone needs no weights. */
export const TINY_TRAIN_CONFIG = {
  model: { backbone: 'builtin:filters', input_size: 64, flow_steps: 2 },
  trainer: { epochs: 3, batch_train: 4, batch_val: 4, validate_every: 1, save_ckpt_every: 1, log_every_n_epochs: 1, patience: 0 },
};

export async function makeWorkspace(dir, { trainConfig = TINY_TRAIN_CONFIG, demo = TINY_DEMO, settings = {} } = {}) {
  mkdirSync(join(dir, 'datasets'), { recursive: true });
  mkdirSync(join(dir, '.vscode'), { recursive: true });
  const script = `import { generateDemoDataset } from ${JSON.stringify(join(repoRoot, 'models', 'data', 'demo-dataset.ts'))};
    console.log(generateDemoDataset(${JSON.stringify(join(dir, 'datasets'))}, ${JSON.stringify(demo)}));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`generating the demo dataset failed:\n${r.stdout}\n${r.stderr}`);
  writeFileSync(
    join(dir, '.vscode', 'settings.json'),
    JSON.stringify({ 'uflow.trainConfig': trainConfig, 'files.exclude': { '**/.uflow': false }, ...settings }, null, 2),
  );
  writeFileSync(
    join(dir, 'notes.md'),
    [
      '# Inspection notes',
      '',
      'Suspicious sample: datasets/demo_tile/test/scratch/000.png',
      '',
      'A good one: "datasets/demo_tile/test/good/000.png"',
      '',
    ].join('\n'),
  );
  return dir;
}
