/**
 * torch.optim.lr_scheduler.LinearLR as U-Flow uses it (spec/uflow.md §5): the factor goes linearly
 * from `startFactor` to `endFactor` over `totalIters` scheduler steps and then stays; Lightning
 * steps it once per epoch, and the official code ends up with T = 25000.
 */
export interface LinearLROptions {
  startFactor?: number;
  endFactor?: number;
  totalIters?: number;
}

export const UFLOW_LR_SCHEDULE: Required<LinearLROptions> = { startFactor: 1.0, endFactor: 0.4, totalIters: 25000 };

/** The learning rate after `steps` scheduler steps (closed form). */
export function linearLR(baseLr: number, steps: number, opts: LinearLROptions = {}): number {
  const { startFactor, endFactor, totalIters } = { ...UFLOW_LR_SCHEDULE, ...opts };
  const t = Math.min(Math.max(steps, 0), totalIters);
  return baseLr * (startFactor + ((endFactor - startFactor) * t) / totalIters);
}

export class LinearLR {
  private steps = 0;
  constructor(
    private readonly target: { lr: number },
    private readonly baseLr: number,
    private readonly opts: LinearLROptions = {},
  ) {
    target.lr = linearLR(baseLr, 0, opts);
  }

  /** Call once per epoch (after it), as Lightning does. */
  step(): number {
    this.steps++;
    this.target.lr = linearLR(this.baseLr, this.steps, this.opts);
    return this.target.lr;
  }

  get epoch(): number {
    return this.steps;
  }

  /** Restores the position (resume). */
  setEpoch(steps: number): void {
    this.steps = steps;
    this.target.lr = linearLR(this.baseLr, steps, this.opts);
  }
}
