import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { api, EXTENSION_ID } from './util.js';

describe('extension', () => {
  it('loads in a VS Code extension host with a workspace', () => {
    assert.ok(vscode.version.length > 0);
    assert.ok(vscode.extensions.getExtension(EXTENSION_ID), 'the extension under test is present');
    assert.ok(vscode.workspace.workspaceFolders?.length, 'a workspace folder is open');
  });

  it('registers every contributed command', async () => {
    await api();
    const pkg = vscode.extensions.getExtension(EXTENSION_ID)!.packageJSON as { contributes: { commands: Array<{ command: string }> } };
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = pkg.contributes.commands.map((c) => c.command).filter((c) => !registered.has(c));
    assert.deepEqual(missing, []);
    for (const c of ['uflow.train', 'uflow.evaluate', 'uflow.predictImage', 'uflow.openResults', 'uflow.cancelTraining', 'uflow.showRuns', 'uflow.installBackend', 'uflow.downloadModels', 'uflow.trainFastflow']) {
      assert.ok(registered.has(c), c);
    }
  });

  it('starts the daemon and shows its backend in the status bar', async () => {
    const a = await api();
    assert.equal(a.daemon.state, 'ready');
    assert.ok(a.daemon.pid, 'the daemon runs as a child process');
    const s = a.daemon.status;
    assert.ok(s, 'uflow/status answered');
    assert.ok(s.engine.backend.length > 0);
    assert.match(a.statusBar.item.text, new RegExp(`U-Flow: ${s.engine.backend}`));
    const tip = a.statusBar.item.tooltip as vscode.MarkdownString;
    assert.match(tip.value, /backend/);
  });
});
