// The workspace the VS Code suites open: a folder holding the generated demo dataset.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export async function makeWorkspace(dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'README.md'), '# U-Flow test workspace\n');
  return dir;
}
