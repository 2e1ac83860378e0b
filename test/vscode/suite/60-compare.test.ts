import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { JobEnded, RunInfo, TrainResult } from '../../../server/protocol.js';
import type { ComparePanel } from '../../../extension/panels.js';
import { api, demoCategory, waitForEvent } from './util.js';

/** Trains one tiny U-Flow run on the demo category (as 10-train-evaluate does) and returns its id. */
async function trainTiny(): Promise<string> {
  const a = await api();
  let result: TrainResult | undefined;
  const ended = await waitForEvent<JobEnded>(
    a.daemon.onJobEnded,
    (e) => e.kind === 'train' && !!result && result.jobs.some((j) => j.jobId === e.jobId),
    'the training job to end',
    480_000,
    async () => {
      result = await vscode.commands.executeCommand<TrainResult>('uflow.train', vscode.Uri.file(demoCategory()), undefined, { quiet: true });
      assert.ok(result?.jobs.length === 1, 'uflow.train returned its job');
    },
  );
  assert.equal(ended.state, 'done', `training ended ${ended.state}: ${ended.error ?? ''}`);
  return result!.jobs[0]!.runId;
}

describe('compare two runs of the same dataset', function () {
  this.timeout(600_000);

  it('uflow.compareRuns evaluates two demo runs and opens the Compare view on them', async () => {
    const a = await api();
    // The finished run of 10-train-evaluate, and a second tiny one (both when run alone).
    const finished = async (): Promise<RunInfo[]> =>
      (await a.runsTree.getChildren()).flatMap((n) => (n.kind === 'run' && n.run.state === 'finished' && n.run.category === 'demo_tile' ? [n.run] : []));
    const before = await finished();
    const ids = before.map((r) => r.runId).slice(0, 1);
    while (ids.length < 2) ids.push(await trainTiny());
    const [idA, idB] = ids as [string, string];

    const panel = await vscode.commands.executeCommand<ComparePanel | undefined>('uflow.compareRuns', idA, idB);
    assert.ok(panel, 'uflow.compareRuns returned the Compare panel');
    assert.equal(panel.panel.viewType, 'uflow.compare');
    assert.equal(panel.a.runId, idA);
    assert.equal(panel.b.runId, idB);
    assert.equal(panel.a.datasetPath, panel.b.datasetPath);
    assert.ok(panel.panel.visible || panel.panel.active, 'the Compare panel is shown');
    const opts = panel.panel.webview.options;
    assert.ok(opts.enableScripts);
    // The maps of both run folders may be loaded by the webview.
    const roots = (opts.localResourceRoots ?? []).map((u) => u.fsPath);
    assert.ok(roots.includes(vscode.Uri.file(panel.a.dir).fsPath) && roots.includes(vscode.Uri.file(panel.b.dir).fsPath), `roots: ${roots.join(', ')}`);
    assert.match(panel.panel.webview.html, /Content-Security-Policy/);
    assert.match(panel.panel.webview.html, /script-src 'nonce-/);
    assert.match(panel.panel.webview.html, /compare\.js/);

    // Both runs now have an evaluation (reused when compared again).
    for (const id of ids) {
      const node = (await a.runsTree.getChildren()).find((n) => n.kind === 'run' && n.run.runId === id)!;
      assert.ok((await a.runsTree.getChildren(node)).some((c) => c.kind === 'results'), `run ${id} has results`);
    }

    // A run of another dataset or the same run twice is refused.
    assert.equal(await vscode.commands.executeCommand('uflow.compareRuns', idA, idA), undefined);
    panel.panel.dispose();
  });
});
