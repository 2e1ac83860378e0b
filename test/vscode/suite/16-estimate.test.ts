import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { RunsResult, StatusResult, TrainResult } from '../../../server/protocol.js';
import { api, demoCategory, waitForEvent, workspaceRoot } from './util.js';

/**
 * Train U-Flow above uflow.confirmTrainingAboveMinutes: the daemon's estimate is shown in a quick
 * pick (Train · the faster choice · Cancel) before anything starts, and Cancel starts no run. The
 * quick pick is driven through the extension's seam (onDidShowTrainingChoice), as a click would.
 */
describe('the estimate before training', function () {
  this.timeout(300_000);
  const setting = () => vscode.workspace.getConfiguration('uflow');

  after(async () => {
    await setting().update('confirmTrainingAboveMinutes', undefined, vscode.ConfigurationTarget.Global);
  });

  it('above a low limit asks first, with the estimate and a faster choice; Cancel starts no run', async () => {
    const a = await api();
    // A limit of a hundredth of a second: every training is above it.
    await setting().update('confirmTrainingAboveMinutes', 0.0002, vscode.ConfigurationTarget.Global);
    const runsBefore = (await a.daemon.request<RunsResult>('uflow/runs', { workspace: workspaceRoot() })).map((r) => r.runId);
    let result: TrainResult | undefined | null = null;
    const shown = await waitForEvent(a.onDidShowTrainingChoice, () => true, 'the training quick pick', 240_000, () => {
      void Promise.resolve(vscode.commands.executeCommand<TrainResult | undefined>('uflow.train', vscode.Uri.file(demoCategory()), undefined, { quiet: true })).then((r) => (result = r));
    });
    assert.match(shown.estimate.line, /^(at most )?about .+: features .+, .+ s\/epoch × \d+ epochs?, \S+/);
    assert.ok(shown.estimate.totalSeconds > 0.012, 'above the limit');
    assert.match(shown.labels[0]!, /^Train \((at most )?about .+\)$/);
    assert.equal(shown.labels[shown.labels.length - 1], 'Cancel');
    assert.ok(shown.labels.length === 2 || /^Train faster: /.test(shown.labels[1]!), shown.labels.join(' | '));
    const status = await a.daemon.request<StatusResult>('uflow/status', {});
    assert.ok(!status.jobs.some((j) => j.kind === 'train' && (j.state === 'running' || j.state === 'queued')), 'nothing trains while the user decides');
    shown.pick('Cancel');
    for (let i = 0; i < 200 && result === null; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(result, undefined, 'uflow.train returned nothing: no job');
    const runsAfter = (await a.daemon.request<RunsResult>('uflow/runs', { workspace: workspaceRoot() })).map((r) => r.runId);
    assert.deepEqual(runsAfter.sort(), runsBefore.sort(), 'no run was created');
  });
});
