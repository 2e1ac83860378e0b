import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { JobEnded, TrainResult, TrainingUpdate } from '../../../server/protocol.js';
import { backendTooltip } from '../../../extension/statusBar.js';
import { api, demoCategory, waitForEvent } from './util.js';

/**
 * backbone auto from VS Code, offline with an empty model cache (run.mjs points HF_ENDPOINT at a
 * closed port and UFLOW_CACHE_DIR at a fresh folder): the training takes the bundled mobilenet_v2
 * and says so in its updates (a notice shown once), in the Runs view and in the status bar's tooltip.
 * The suite's workspace sets builtin:filters in uflow.trainConfig (the other suites' fast trainings),
 * so this training asks for `auto` explicitly: the value the setting uflow.backbone and the daemon default to.
 */
describe('backbone auto, offline', function () {
  this.timeout(300_000);

  it('trains on the bundled mobilenet_v2 and says so', async () => {
    const a = await api();
    const seen: TrainingUpdate[] = [];
    const sub = a.daemon.onTrainingUpdate((u) => seen.push(u));
    let result: TrainResult | undefined;
    const config = { model: { backbone: 'auto', input_size: 64, flow_steps: 1 }, trainer: { epochs: 1, validate_every: 0 } };
    const ended = await waitForEvent<JobEnded>(
      a.daemon.onJobEnded,
      (e) => e.kind === 'train' && !!result && result.jobs.some((j) => j.jobId === e.jobId),
      'the training job to end',
      240_000,
      async () => {
        result = await vscode.commands.executeCommand<TrainResult>('uflow.train', vscode.Uri.file(demoCategory()), undefined, { quiet: true, config });
        assert.ok(result?.jobs.length === 1);
      },
    );
    sub.dispose();
    assert.equal(ended.state, 'done', ended.error);
    const run = ended.run!;
    assert.equal(run.config.model.backbone, 'mobilenet_v2');
    assert.equal(run.autoBackbone?.chosen?.backbone, 'mobilenet_v2');
    const mine = seen.filter((u) => u.runId === run.runId);
    assert.ok(mine.some((u) => /^mobilenet_v2 at 64 \(backbone auto: /.test(u.backbone ?? '')), 'updates name the backbone');
    assert.ok(mine.some((u) => /^training on the bundled MobileNetV2/.test(u.notice ?? '')), 'updates carry the notice');

    const roots = await a.runsTree.getChildren();
    const node = roots.find((n) => n.kind === 'run' && n.run.runId === run.runId);
    assert.ok(node, 'the run is in the Runs view');
    const tip = a.runsTree.getTreeItem(node).tooltip as vscode.MarkdownString;
    assert.match(tip.value, /backbone auto → `mobilenet_v2`/);

    const status = await a.daemon.refreshStatus();
    assert.equal(status?.autoBackbone?.backbone, 'mobilenet_v2');
    assert.match(backendTooltip(status).value, /Backbone `auto` trains U-Flow with `mobilenet_v2` at 256/);
  });
});
