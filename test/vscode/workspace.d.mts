export const TINY_DEMO: { seed: number; size: number; counts: { train: number; testGood: number; defects: Record<string, number> } };
export const TINY_TRAIN_CONFIG: { model: Record<string, unknown>; trainer: Record<string, unknown> };
export function makeWorkspace(
  dir: string,
  opts?: { trainConfig?: { model?: Record<string, unknown>; trainer?: Record<string, unknown> }; demo?: typeof TINY_DEMO; settings?: Record<string, unknown> },
): Promise<string>;
