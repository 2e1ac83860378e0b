/**
 * A daemon killed mid-training leaves its run 'running'; the next daemon marks it 'interrupted'
 * when it meets the workspace, and the run resumes from its last checkpoint. A client that shuts
 * the daemon down cancels its training cleanly (run 'cancelled', checkpoint kept).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EvaluateResult, JobEnded, LogParams, RunInfo, TrainResult, TrainingUpdate } from '../../server/protocol.js';
import { tinyConfig, writeTinyCategory } from './fixtures.js';
import { startDaemon, tempDir, withTimeout } from './harness.js';

const MIN = 60_000;

test('killed daemon → run marked interrupted by the next one → resumed to the end', { timeout: 15 * MIN }, async () => {
  const { dir, cleanup } = tempDir('uflow-recovery-');
  try {
    const cat = await writeTinyCategory(join(dir, 'data'), 'carpet', { size: 32, trainGood: 4, testGood: 1, defects: 1 });
    const a = await startDaemon({ workspaceFolders: [dir] });
    const res = (await a.conn.sendRequest('uflow/train', { datasetPath: cat, model: 'uflow', config: tinyConfig(500) })) as TrainResult;
    const { runId, jobId } = res.jobs[0]!;
    await a.inbox.wait('uflow/trainingUpdate', (u: TrainingUpdate) => u.jobId === jobId && u.phase === 'train' && u.epoch >= 3, 10 * MIN, 'epoch 3');
    a.proc.kill('SIGKILL');
    await withTimeout(a.exited, 30_000, 'the killed daemon to go');
    a.dispose();
    const left = JSON.parse(readFileSync(join(dir, '.uflow', 'runs', runId, 'run.json'), 'utf8')) as RunInfo;
    assert.equal(left.state, 'running');

    const b = await startDaemon({ workspaceFolders: [dir] });
    try {
      const runs = (await b.conn.sendRequest('uflow/runs', {})) as RunInfo[];
      const run = runs.find((r) => r.runId === runId)!;
      assert.equal(run.state, 'interrupted');
      assert.ok(run.epochsDone >= 2, `epochsDone ${run.epochsDone}`);
      assert.ok(!('pid' in run), 'runs answers RunInfo without the owner pid');
      assert.ok(b.stderr().includes(`run ${runId}`), 'the daemon logged what it marked');

      // Evaluation cache: reused while the run is unchanged, made again once it has trained on.
      const ev1 = (await b.conn.sendRequest('uflow/evaluate', { runId })) as EvaluateResult;
      assert.ok(!ev1.cached);
      assert.equal(((await b.conn.sendRequest('uflow/evaluate', { runId })) as EvaluateResult).cached, true);

      const resumed = (await b.conn.sendRequest('uflow/train', { datasetPath: cat, model: 'uflow', resumeRunId: runId, config: { trainer: { epochs: run.epochsDone + 1 } } })) as TrainResult;
      assert.equal(resumed.jobs[0]!.runId, runId);
      const end = (await b.inbox.wait('uflow/jobEnded', (e: JobEnded) => e.jobId === resumed.jobs[0]!.jobId, 10 * MIN)).params as JobEnded;
      assert.equal(end.state, 'done', end.error);
      assert.equal(end.run?.state, 'finished');
      assert.equal(end.run?.epochsDone, run.epochsDone + 1);
      const ev2 = (await b.conn.sendRequest('uflow/evaluate', { runId })) as EvaluateResult;
      assert.ok(!ev2.cached, 'the run changed: evaluated again');
      assert.notEqual(ev2.evaluatedAt, ev1.evaluatedAt);
    } finally {
      await b.close();
    }
  } finally {
    cleanup();
  }
});

test('shutdown from the client cancels a running training; its run says cancelled', { timeout: 15 * MIN }, async () => {
  const { dir, cleanup } = tempDir('uflow-shutdown-');
  try {
    const cat = await writeTinyCategory(join(dir, 'data'), 'carpet', { size: 32, trainGood: 4, testGood: 1, defects: 1 });
    const d = await startDaemon({ workspaceFolders: [dir] });
    const res = (await d.conn.sendRequest('uflow/train', { datasetPath: cat, model: 'uflow', config: tinyConfig(500) })) as TrainResult;
    const { runId, jobId } = res.jobs[0]!;
    await d.inbox.wait('uflow/trainingUpdate', (u: TrainingUpdate) => u.jobId === jobId && u.phase === 'train' && u.epoch >= 2, 10 * MIN, 'epoch 2');
    await d.conn.sendRequest('shutdown'); // answered once the job has stopped
    const end = d.inbox.all('uflow/jobEnded', (e: JobEnded) => e.jobId === jobId)[0]?.params as JobEnded | undefined;
    assert.equal(end?.state, 'cancelled');
    assert.ok(d.inbox.all('uflow/log', (l: LogParams) => /stopping the jobs/.test(l.message)).length >= 1);
    assert.equal(await d.close(), 0);
    const run = JSON.parse(readFileSync(join(dir, '.uflow', 'runs', runId, 'run.json'), 'utf8')) as RunInfo;
    assert.equal(run.state, 'cancelled');
    assert.ok(run.epochsDone >= 1);
  } finally {
    cleanup();
  }
});
