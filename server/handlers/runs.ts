/** `uflow/runs`: the runs of one workspace (or of every folder the client may use), newest first. */
import { trainDirOf } from '../paths.js';
import type { RunInfo } from '../protocol.js';
import { compareRunsNewestFirst, listRuns, type StoredRun } from '../runs.js';
import type { RequestContext } from './context.js';
import { optPath, paramsObject } from './params.js';

function publicRun(r: StoredRun): RunInfo {
  const { pid: _pid, host: _host, ...run } = r;
  void _pid;
  void _host;
  return run;
}

export async function runs(params: unknown, ctx: RequestContext): Promise<RunInfo[]> {
  const p = paramsObject(ctx.method, params, true);
  const workspace = optPath(ctx.method, p, 'workspace');
  const dirs: string[] = [];
  if (workspace) {
    dirs.push(trainDirOf(ctx.session.policy.check(workspace, `${ctx.method}: params.workspace`).path));
  } else {
    for (const r of ctx.session.policy.roots()) dirs.push(trainDirOf(r.path));
  }
  const seen = new Set<string>();
  const out: StoredRun[] = [];
  for (const d of dirs) {
    ctx.daemon.adoptTrainDir(d);
    for (const r of listRuns(d)) {
      if (seen.has(r.dir)) continue;
      seen.add(r.dir);
      out.push(r);
    }
  }
  return out.sort(compareRunsNewestFirst).map(publicRun);
}
