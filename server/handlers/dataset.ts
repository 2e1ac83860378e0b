/** `uflow/inspectDataset`: layout, categories, counts per split and defect, problems found. */
import { existsSync } from 'node:fs';
import { RpcError } from '../paths.js';
import { ErrorCodes, type DatasetInfo } from '../protocol.js';
import type { RequestContext } from './context.js';
import { paramsObject, reqPath } from './params.js';

export async function inspectDataset(params: unknown, ctx: RequestContext): Promise<DatasetInfo> {
  const p = paramsObject(ctx.method, params);
  const path = reqPath(ctx.method, p, 'path');
  const { real } = ctx.session.policy.check(path, `${ctx.method}: params.path`);
  if (!existsSync(real)) throw new RpcError(ErrorCodes.NotFound, `${ctx.method}: params.path '${path}' does not exist`);
  // Wired to models/data/dataset.ts's inspectDataset once it lands.
  throw new RpcError(ErrorCodes.NotAvailable, `${ctx.method}: dataset inspection is not available in this build yet`);
}
