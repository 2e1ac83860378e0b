/**
 * models/ (the tensors, the data, the metrics) is the bottom layer: nothing in it imports from
 * server/ (the daemon, the CLI, the protocol). Types both need live in models/ and the protocol
 * re-exports them (e.g. models/data/types.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test('nothing in models/ imports from server/', () => {
  const server = join(root, 'server') + sep;
  const offenders: string[] = [];
  for (const file of tsFiles(join(root, 'models'))) {
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.[^'"]*)['"]/g)) {
      if (resolve(dirname(file), m[1]!).concat(sep).startsWith(server)) offenders.push(`${relative(root, file)}: ${m[1]}`);
    }
  }
  assert.deepEqual(offenders, []);
});
