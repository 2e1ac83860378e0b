/**
 * PyTorch's Adam (torch.optim.Adam, amsgrad False, maximize False): L2 weight decay added to the
 * gradient, bias-corrected moments, eps added after the bias-corrected square root:
 *   g ← g + wd·θ;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   θ ← θ − lr/(1−β1^t) · m / (√v / √(1−β2^t) + eps)
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  /** L2 penalty added to the gradient (PyTorch's weight_decay; U-Flow configs: 1e-5). */
  weightDecay?: number;
}

function zerosVariable(p: tf.Tensor): tf.Variable {
  const z = tf.zerosLike(p);
  const v = tf.variable(z, false);
  z.dispose();
  return v;
}

export class Adam {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken (PyTorch's `step`, shared by all parameters here). */
  stepCount = 0;
  private readonly params: tf.Variable[];
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(params: ReadonlyArray<tf.Variable | { variable: tf.Variable }>, opts: AdamOptions) {
    this.params = params.map((p) => (p instanceof tf.Variable ? p : p.variable));
    this.lr = opts.lr;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    for (const p of this.params) {
      this.m.set(p.name, zerosVariable(p));
      this.v.set(p.name, zerosVariable(p));
    }
  }

  /** One step from gradients keyed by variable name (as tf.variableGrads returns them). A parameter without a gradient is left alone. */
  apply(grads: tf.NamedTensorMap): void {
    this.stepCount++;
    const t = this.stepCount;
    const stepSize = this.lr / (1 - this.beta1 ** t);
    const bc2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    tf.tidy(() => {
      for (const p of this.params) {
        let g = grads[p.name];
        if (!g) continue;
        if (this.weightDecay !== 0) g = tf.add(g, tf.mul(p, this.weightDecay));
        const m = this.m.get(p.name)!;
        const v = this.v.get(p.name)!;
        const m1 = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const v1 = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        const denom = tf.add(tf.div(tf.sqrt(v1), bc2Sqrt), this.eps);
        m.assign(m1);
        v.assign(v1);
        p.assign(tf.sub(p, tf.mul(tf.div(m1, denom), stepSize)));
      }
    });
  }

  /** The first ('m') or second ('v') moment of a parameter, by its tfjs variable name (saving and restoring for resume). */
  moment(kind: 'm' | 'v', variableName: string): tf.Variable | undefined {
    return (kind === 'm' ? this.m : this.v).get(variableName);
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}
