/** `uflow/inspectDataset`: layout, categories, counts per split and defect, problems found. */
import { DatasetError, inspectDataset as inspect } from '../../models/data/dataset.js';
import { RpcError } from '../paths.js';
import { ErrorCodes, type DatasetInfo } from '../protocol.js';
import type { RequestContext } from './context.js';
import { paramsObject, reqPath } from './params.js';

export async function inspectDataset(params: unknown, ctx: RequestContext): Promise<DatasetInfo> {
  const p = paramsObject(ctx.method, params);
  const path = reqPath(ctx.method, p, 'path');
  const checked = ctx.session.policy.check(path, `${ctx.method}: params.path`);
  try {
    return await inspect(checked.path);
  } catch (e) {
    if (e instanceof DatasetError) throw new RpcError(ErrorCodes.BadDataset, `${ctx.method}: ${e.message}`);
    throw e;
  }
}
