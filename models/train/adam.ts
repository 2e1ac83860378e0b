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
  /** Update on the host (default: on wasm and cpu) or with tensor ops (default elsewhere). */
  host?: boolean;
}

function zerosVariable(p: tf.Tensor): tf.Variable {
  const z = tf.zerosLike(p);
  const v = tf.variable(z, false);
  z.dispose();
  return v;
}

/** Backends whose tensors live in host memory: there the update runs as one JS loop per parameter. */
const HOST_BACKENDS = new Set(['wasm', 'cpu']);

export class Adam {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken (PyTorch's `step`, shared by all parameters here). */
  stepCount = 0;
  /**
   * Whether the update runs on the host (wasm, cpu: decided at construction): one loop per
   * parameter over its values, moments kept as Float32Arrays, instead of about 15 small tensor
   * kernels per parameter, whose dispatch cost dominated small flows (bench/NOTES.md). On GPU
   * backends the update stays on the device (tensor ops, moments as variables).
   */
  readonly host: boolean;
  private readonly params: tf.Variable[];
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly mHost = new Map<string, Float32Array>();
  private readonly vHost = new Map<string, Float32Array>();

  constructor(params: ReadonlyArray<tf.Variable | { variable: tf.Variable }>, opts: AdamOptions) {
    this.params = params.map((p) => (p instanceof tf.Variable ? p : p.variable));
    this.lr = opts.lr;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.host = opts.host ?? HOST_BACKENDS.has(tf.getBackend());
    for (const p of this.params) {
      if (this.host) {
        this.mHost.set(p.name, new Float32Array(p.size));
        this.vHost.set(p.name, new Float32Array(p.size));
      } else {
        this.m.set(p.name, zerosVariable(p));
        this.v.set(p.name, zerosVariable(p));
      }
    }
  }

  /** One step from gradients keyed by variable name (as tf.variableGrads returns them). A parameter without a gradient is left alone. */
  apply(grads: tf.NamedTensorMap): void {
    this.stepCount++;
    const t = this.stepCount;
    const stepSize = this.lr / (1 - this.beta1 ** t);
    const bc2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    if (this.host) {
      this.applyHost(grads, stepSize, bc2Sqrt);
      return;
    }
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

  /** The same update, element by element (each stored value rounded to float32, as the tensor path stores them). */
  private applyHost(grads: tf.NamedTensorMap, stepSize: number, bc2Sqrt: number): void {
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this;
    for (const p of this.params) {
      const gt = grads[p.name];
      if (!gt) continue;
      const g = gt.dataSync() as Float32Array;
      // dataSync's array may be the backend's own storage (cpu): read it, write a new array
      const w0 = p.dataSync() as Float32Array;
      const w = new Float32Array(w0.length);
      const m = this.mHost.get(p.name)!;
      const v = this.vHost.get(p.name)!;
      for (let i = 0; i < w.length; i++) {
        const gi = Math.fround(g[i]! + wd * w0[i]!);
        const mi = (m[i] = b1 * m[i]! + (1 - b1) * gi);
        const vi = (v[i] = b2 * v[i]! + (1 - b2) * gi * gi);
        w[i] = w0[i]! - (mi / (Math.sqrt(vi) / bc2Sqrt + eps)) * stepSize;
      }
      tf.tidy(() => p.assign(tf.tensor(w, p.shape)));
    }
  }

  /** Whether this optimizer updates the variable of that tfjs name (and so holds its moments). */
  tracks(variableName: string): boolean {
    return this.mHost.has(variableName) || this.m.has(variableName);
  }

  /** A copy of the first ('m') or second ('v') moment of a parameter, by its tfjs variable name (saving for resume). */
  moment(kind: 'm' | 'v', variableName: string): { shape: number[]; data: Float32Array } | undefined {
    const host = (kind === 'm' ? this.mHost : this.vHost).get(variableName);
    const shape = this.params.find((p) => p.name === variableName)?.shape;
    if (host && shape) return { shape: [...shape], data: Float32Array.from(host) };
    const t = (kind === 'm' ? this.m : this.v).get(variableName);
    return t ? { shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) } : undefined;
  }

  /** Restores a moment (resume); false when there is no such parameter or the size differs. */
  setMoment(kind: 'm' | 'v', variableName: string, data: Float32Array): boolean {
    const host = (kind === 'm' ? this.mHost : this.vHost).get(variableName);
    if (host) {
      if (host.length !== data.length) return false;
      host.set(data);
      return true;
    }
    const t = (kind === 'm' ? this.m : this.v).get(variableName);
    if (!t || t.size !== data.length) return false;
    tf.tidy(() => t.assign(tf.tensor(data, t.shape)));
    return true;
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
    this.mHost.clear();
    this.vHost.clear();
  }
}
