import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import type { JobEnded, TrainingUpdate, TrainResult } from '../../../server/protocol.js';
import { readSafetensors } from '../../../models/io/safetensors.js';
import { api, demoCategory, waitForEvent } from './util.js';

describe('daemon killed mid-training', function () {
  this.timeout(600_000);

  it('is noticed and restarted; the status bar says the run was interrupted; its last checkpoint is still listed', async () => {
    const a = await api();
    let result: TrainResult | undefined;
    // A long training (many epochs), checkpointed every epoch: kill it once epoch 2 runs.
    const update = await waitForEvent<TrainingUpdate>(
      a.daemon.onTrainingUpdate,
      (u) => !!result && u.runId === result.jobs[0]!.runId && u.phase === 'train' && u.epoch >= 2,
      'epoch 2 of the long training',
      300_000,
      async () => {
        result = await vscode.commands.executeCommand<TrainResult>('uflow.train', vscode.Uri.file(demoCategory()), undefined, {
          quiet: true,
          config: { trainer: { epochs: 500, save_ckpt_every: 1, validate_every: 0 } },
        });
        assert.ok(result?.jobs.length === 1);
      },
    );
    const runId = update.runId;
    assert.match(a.statusBar.item.text, /U-Flow demo_tile · \d+\/500/, `status bar while training: ${a.statusBar.item.text}`);
    const oldPid = a.daemon.pid;
    assert.ok(oldPid);

    const exited = waitForEvent(a.daemon.onDidExit, (e) => !e.expected, 'the daemon exit', 30_000);
    const ready = waitForEvent(a.daemon.onDidChangeState, (s) => s === 'ready', 'the daemon restart', 120_000);
    process.kill(oldPid, 'SIGKILL');
    const exit = await exited;
    assert.equal(exit.signal, 'SIGKILL');
    await ready;
    assert.notEqual(a.daemon.pid, oldPid, 'a new daemon process');

    assert.match(a.statusBar.item.text, /U-Flow demo_tile interrupted at epoch \d+\/500/, `status bar after the crash: ${a.statusBar.item.text}`);
    assert.equal(a.tracker.get(runId)?.state, 'interrupted');

    const roots = await a.runsTree.getChildren();
    const node = roots.find((n) => n.kind === 'run' && n.run.runId === runId);
    assert.ok(node && node.kind === 'run', 'the interrupted run is still listed');
    assert.equal(node.run.state, 'interrupted', 'the daemon marked it interrupted');
    const children = await a.runsTree.getChildren(node);
    const ckpt = children.find((c) => c.kind === 'file' && c.label === 'checkpoint.safetensors');
    assert.ok(ckpt && ckpt.kind === 'file', 'its last checkpoint is listed');
    assert.ok(existsSync(ckpt.path));
    assert.ok(node.run.epochsDone >= 1, `epochs done: ${node.run.epochsDone}`);

    // Showing the runs acknowledges the notice.
    await vscode.commands.executeCommand('uflow.showRuns');
    assert.doesNotMatch(a.statusBar.item.text, /interrupted/);

    // Resume continues from the checkpoint (not from epoch 1); then cancel it. The checkpoint may be
    // one epoch ahead of run.json when the kill fell between the two writes: resume follows the checkpoint.
    const ckptEpoch = Number(readSafetensors(ckpt.path).metadata.epoch ?? node.run.epochsDone);
    assert.ok(ckptEpoch >= node.run.epochsDone, `checkpoint epoch ${ckptEpoch}, run.json ${node.run.epochsDone}`);
    const done = ckptEpoch;
    let resumed: TrainResult | undefined;
    const next = await waitForEvent<TrainingUpdate>(
      a.daemon.onTrainingUpdate,
      (u) => u.runId === runId && u.phase === 'train' && u.epoch > done,
      'the resumed training',
      240_000,
      async () => {
        resumed = await vscode.commands.executeCommand<TrainResult>('uflow.resumeTraining', runId);
        assert.equal(resumed?.jobs[0]?.runId, runId, 'the same run continues');
      },
    );
    assert.equal(next.epoch, done + 1, `resumed at epoch ${next.epoch} after ${done} done`);
    const ended = await waitForEvent<JobEnded>(a.daemon.onJobEnded, (e) => e.jobId === resumed!.jobs[0]!.jobId, 'the cancel', 120_000, () =>
      vscode.commands.executeCommand('uflow.cancelTraining', resumed!.jobs[0]!.jobId),
    );
    assert.equal(ended.state, 'cancelled');
  });
});
