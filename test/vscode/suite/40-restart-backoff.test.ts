import * as assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { DaemonState } from '../../../extension/daemon.js';
import { api, waitForEvent, workspaceRoot } from './util.js';

describe('daemon that keeps crashing', function () {
  this.timeout(120_000);

  it('is restarted with growing delays, then given up on; a fixed uflow.serverPath brings it back', async () => {
    const a = await api();
    const crasher = join(workspaceRoot(), 'crashing-daemon.cjs');
    writeFileSync(crasher, "process.stderr.write('crashing on purpose\\n'); process.exit(3);\n");
    const states: DaemonState[] = [];
    const exits: number[] = [];
    const subs = [a.daemon.onDidChangeState((s) => states.push(s)), a.daemon.onDidExit((e) => !e.expected && exits.push(Date.now()))];
    const config = vscode.workspace.getConfiguration('uflow');
    try {
      await waitForEvent(a.daemon.onDidChangeState, (s) => s === 'failed', 'the daemon to be given up on', 90_000, () =>
        config.update('serverPath', crasher, vscode.ConfigurationTarget.Global),
      );
      assert.ok(exits.length >= 6, `crashed ${exits.length} times`);
      const gaps = exits.slice(1).map((t, i) => t - exits[i]!);
      assert.ok(gaps[gaps.length - 1]! > gaps[0]!, `the delays grow: ${gaps.join(', ')} ms`);
      assert.ok(states.includes('restarting'));
      assert.match(a.statusBar.item.text, /U-Flow: stopped/);
    } finally {
      const ready = waitForEvent(a.daemon.onDidChangeState, (s) => s === 'ready', 'the real daemon back', 60_000);
      await config.update('serverPath', undefined, vscode.ConfigurationTarget.Global);
      await ready;
    }
    for (const s of subs) s.dispose();
    assert.equal(a.daemon.state, 'ready', `states: ${states.join(' → ')}`);
    assert.doesNotMatch(a.statusBar.item.text, /U-Flow: (stopped|restarting|starting)/);
  });
});
