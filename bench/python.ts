/**
 * The Python that runs the benches' references: /usr/bin/python3 (Debian's python3-torch here), or
 * UFLOW_BENCH_PYTHON (bench:gpu points it at the lent machine's python3 with CUDA PyTorch), and the
 * device PyTorch runs on: UFLOW_BENCH_TORCH_DEVICE (cpu unless set; cuda for bench:gpu).
 */
import { median } from './stats.js';

export const PYTHON = process.env.UFLOW_BENCH_PYTHON ?? '/usr/bin/python3';
export const TORCH_DEVICE = process.env.UFLOW_BENCH_TORCH_DEVICE ?? 'cpu';

/** 'PyTorch 1.13 CPU, 2 threads' or 'PyTorch 2.11 CUDA'. */
export function torchWhat(version: string, threads: number, device = TORCH_DEVICE): string {
  return device === 'cpu' ? `PyTorch ${version} CPU, ${threads} threads` : `PyTorch ${version} ${device.toUpperCase()}`;
}

/** One run of a reference script: its timed repetitions (wall and CPU, any unit). */
export interface ReferenceRun {
  times: number[];
  cpu: number[];
}

/**
 * The reference timed twice, once before ours and once after, pooled: the median over all the
 * repetitions of both runs, and each run's own median (printed, so that the spread shows). On this
 * kind of shared 2-core machine one PyTorch run's median moved by 1.7× between runs minutes apart
 * (bench/NOTES.md, attempt 18); bracketing ours takes the machine's state on both sides of it.
 * A failed run (a string) is ignored when the other succeeded.
 */
export function pooledReference<T extends ReferenceRun>(runs: Array<T | string>): (T & { wall: number; cpuMedian: number; runMedians: number[] }) | string {
  const ok = runs.filter((r): r is T => typeof r !== 'string');
  if (!ok.length) return runs.find((r): r is string => typeof r === 'string') ?? 'reference unavailable';
  return { ...ok[0]!, wall: median(ok.flatMap((r) => r.times)), cpuMedian: median(ok.flatMap((r) => r.cpu)), runMedians: ok.map((r) => median(r.times)) };
}
