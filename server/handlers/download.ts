/** `uflow/downloadModels`: the released U-Flow checkpoints, with progress and checksums. */
import { RpcError } from '../paths.js';
import { ErrorCodes, type DownloadModelsResult } from '../protocol.js';
import type { RequestContext } from './context.js';
import { optBool, optStringArray, optToken, paramsObject } from './params.js';

export async function downloadModels(params: unknown, ctx: RequestContext): Promise<DownloadModelsResult> {
  const p = paramsObject(ctx.method, params, true);
  optStringArray(ctx.method, p, 'categories');
  optBool(ctx.method, p, 'overwrite');
  optToken(ctx.method, p, 'workDoneToken');
  // Wired to server/pretrained.ts's downloadModels once it lands.
  throw new RpcError(ErrorCodes.NotAvailable, `${ctx.method}: downloading the released models is not available in this build yet; place the checkpoints by hand (see spec/pretrained.md)`);
}
