// Mocha runner loaded by the VS Code extension host (extensionTestsPath). Each *.test.ts of this
// folder is bundled to a .cjs file beside this one (test/vscode/build.mjs); they run in name order.
import Mocha from 'mocha';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', color: false, timeout: 120_000, reporter: 'spec' });
  const grep = process.env.UFLOW_VSCODE_GREP;
  if (grep) mocha.grep(grep);
  for (const f of readdirSync(__dirname).sort()) if (f.endsWith('.test.cjs')) mocha.addFile(join(__dirname, f));
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures > 0 ? reject(new Error(`${failures} test(s) failed`)) : resolve()));
  });
}
