/**
 * The Python that runs the benches' references: /usr/bin/python3 (Debian's python3-torch here), or
 * UFLOW_BENCH_PYTHON (bench:gpu points it at the lent machine's python3 with CUDA PyTorch), and the
 * device PyTorch runs on: UFLOW_BENCH_TORCH_DEVICE (cpu unless set; cuda for bench:gpu).
 */
export const PYTHON = process.env.UFLOW_BENCH_PYTHON ?? '/usr/bin/python3';
export const TORCH_DEVICE = process.env.UFLOW_BENCH_TORCH_DEVICE ?? 'cpu';

/** 'PyTorch 1.13 CPU, 2 threads' or 'PyTorch 2.11 CUDA'. */
export function torchWhat(version: string, threads: number, device = TORCH_DEVICE): string {
  return device === 'cpu' ? `PyTorch ${version} CPU, ${threads} threads` : `PyTorch ${version} ${device.toUpperCase()}`;
}
