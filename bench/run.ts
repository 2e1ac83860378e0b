/**
 * `npm run bench`: runs every bench/*.bench.ts in its own process, one after another (they measure
 * wall time and must not share the 2 cores), and prints each one's output. Each benchmark prints its
 * figure beside a reference run (PyTorch / Python where /usr/bin/python3 has it) as a ratio.
 *
 *   npm run bench                 # all
 *   npm run bench -- train-step   # the ones whose name contains a word
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort();
if (files.length === 0) {
  console.error(`no benchmark matches ${filters.join(', ')}; available: ${readdirSync(here).filter((f) => f.endsWith('.bench.ts')).join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f} ===`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, f)], { stdio: 'inherit', cwd: join(here, '..') });
  console.log(`--- ${f}: ${r.status === 0 ? 'ok' : `exit ${r.status}`} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
