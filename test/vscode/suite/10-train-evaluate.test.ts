import * as assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Evaluation, ExportResult, JobEnded, RunInfo, TrainResult } from '../../../server/protocol.js';
import { api, demoCategory, until, waitForEvent } from './util.js';

/** Shared with the later suites: the run trained here. */
export const trained: { run?: RunInfo; evaluation?: Evaluation } = {};

describe('train and evaluate the demo dataset by command', function () {
  this.timeout(600_000);
  let runId: string;

  it('trains U-Flow on the demo category and the run appears', async () => {
    const a = await api();
    const epochsSeen = new Set<number>();
    const sub = a.daemon.onTrainingUpdate((u) => {
      if (u.phase === 'train' || u.phase === 'validate' || u.phase === 'done') epochsSeen.add(u.epoch);
    });
    let result: TrainResult | undefined;
    const ended = await waitForEvent<JobEnded>(
      a.daemon.onJobEnded,
      (e) => e.kind === 'train' && !!result && result.jobs.some((j) => j.jobId === e.jobId),
      'the training job to end',
      480_000,
      async () => {
        result = await vscode.commands.executeCommand<TrainResult>('uflow.train', vscode.Uri.file(demoCategory()), undefined, { quiet: true });
        assert.ok(result, 'uflow.train returned its jobs');
        assert.equal(result.jobs.length, 1);
        assert.equal(result.jobs[0]!.category, 'demo_tile');
      },
    );
    sub.dispose();
    assert.equal(ended.state, 'done', `training ended ${ended.state}: ${ended.error ?? ''}`);
    runId = result!.jobs[0]!.runId;
    assert.ok(epochsSeen.size >= 2, `training updates for several epochs (saw ${[...epochsSeen].join(', ')})`);
    const view = a.tracker.get(runId);
    assert.ok(view, 'the tracker followed the run');
    assert.equal(view.state, 'finished');
    assert.ok(view.points.length >= 2 && view.points.every((p) => typeof p.loss === 'number'), 'loss per epoch');

    // The run is listed (daemon) and shown in the Runs view with its checkpoint.
    const roots = await a.runsTree.getChildren();
    const node = roots.find((n) => n.kind === 'run' && n.run.runId === runId);
    assert.ok(node && node.kind === 'run', 'the run is in the Runs view');
    assert.equal(node.run.state, 'finished');
    trained.run = node.run;
    const children = await a.runsTree.getChildren(node);
    assert.ok(children.some((c) => c.kind === 'file' && c.label === 'checkpoint.safetensors'), 'its checkpoint is listed');
    assert.ok(existsSync(join(node.run.dir, 'checkpoint.safetensors')));
  });

  it('evaluates the run by command and opens the Results view', async () => {
    const a = await api();
    const evaluation = await vscode.commands.executeCommand<Evaluation>('uflow.evaluate', runId);
    assert.ok(evaluation, 'uflow.evaluate returned the evaluation');
    trained.evaluation = evaluation;
    assert.equal(evaluation.runId, runId);
    assert.equal(evaluation.images.length, 5, 'every test image scored');
    for (const k of ['image_auroc', 'pixel_auroc', 'aupro', 'miou'] as const) {
      const v = evaluation.overall[k];
      assert.ok(v === null || (v >= 0 && v <= 1), `${k} = ${v}`);
    }
    assert.ok(typeof evaluation.overall.image_auroc === 'number', 'image AUROC computed');
    assert.deepEqual(Object.keys(evaluation.perDefect).sort(), ['hole', 'scratch', 'stain']);
    await until(() => a.panels.results().some((p) => p.run.runId === runId), [vscode.window.tabGroups.onDidChangeTabs as vscode.Event<unknown>], 'the Results panel');
    const panel = a.panels.results().find((p) => p.run.runId === runId)!;
    assert.ok(panel.panel.visible || panel.panel.active, 'the Results panel is shown');
    // Its tree node now offers Results and the test images.
    const roots = await a.runsTree.getChildren();
    const node = roots.find((n) => n.kind === 'run' && n.run.runId === runId)!;
    const children = await a.runsTree.getChildren(node);
    assert.ok(children.some((c) => c.kind === 'results'));
    assert.ok(children.some((c) => c.kind === 'images' && c.images.length === 5));
  });

  it('opens the Training view on the run', async () => {
    const a = await api();
    await vscode.commands.executeCommand('uflow.showTraining', runId);
    const p = a.panels.training();
    assert.ok(p, 'the Training panel exists');
    assert.equal(p.panel.viewType, 'uflow.training');
    assert.ok(p.panel.webview.options.enableScripts);
    assert.match(p.panel.webview.html, /Content-Security-Policy/);
    assert.match(p.panel.webview.html, /script-src 'nonce-/);
  });

  it('exports the run to ONNX by command (uflow/export); an output outside the workspace is refused', async () => {
    const a = await api();
    const run = (await a.runsTree.getChildren()).find((n) => n.kind === 'run' && n.run.runId === runId);
    assert.ok(run && run.kind === 'run');
    const out = join(run.run.dir, 'exported.onnx');
    // The tree node is what the Runs view's context menu passes.
    const res = await vscode.commands.executeCommand<ExportResult>('uflow.exportOnnx', run, { out });
    assert.ok(res, 'uflow.exportOnnx returned the export');
    assert.equal(res.path, out);
    assert.equal(statSync(out).size, res.bytes);
    assert.equal(res.metadata.run_id, runId);
    const outside = join(tmpdir(), `uflow-export-outside-${process.pid}.onnx`);
    assert.equal(await vscode.commands.executeCommand('uflow.exportOnnx', runId, { out: outside }), undefined);
    assert.equal(existsSync(outside), false);
  });

  it('cancels a running training by command; the run ends cancelled', async () => {
    const a = await api();
    let result: TrainResult | undefined;
    await waitForEvent(
      a.daemon.onTrainingUpdate,
      (u) => !!result && u.runId === result.jobs[0]!.runId && u.phase === 'train' && u.epoch >= 1,
      'the long training to run',
      240_000,
      async () => {
        result = await vscode.commands.executeCommand<TrainResult>('uflow.train', vscode.Uri.file(demoCategory()), undefined, {
          quiet: true,
          config: { trainer: { epochs: 500, validate_every: 0 } },
        });
      },
    );
    const ended = await waitForEvent<JobEnded>(a.daemon.onJobEnded, (e) => e.jobId === result!.jobs[0]!.jobId, 'the cancelled job', 120_000, async () => {
      // One training runs: the command cancels it without asking.
      assert.equal(await vscode.commands.executeCommand<boolean>('uflow.cancelTraining'), true);
    });
    assert.equal(ended.state, 'cancelled');
    await until(() => a.tracker.get(ended.runId ?? result!.jobs[0]!.runId)?.state === 'cancelled', [a.tracker.onDidChange as vscode.Event<unknown>], 'the tracker to see the cancel');
    assert.match(a.statusBar.item.text, /cancelled|U-Flow: /);
  });
});
