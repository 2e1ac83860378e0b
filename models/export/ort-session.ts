/**
 * The exported model (onnx-export.ts) run in onnxruntime-node, in memory: the inference engine of
 * predict, evaluate and the daemon where it loads. onnxruntime-node is imported lazily (the bundles
 * keep it external and must work without it); UFLOW_ORT_DISABLE=1 makes the loader fail as if it
 * were missing. Execution providers: CPU everywhere; cuda, dml (DirectML), coreml, webgpu, tensorrt
 * when asked for (UFLOW_ORT_PROVIDERS=cuda,… or the caller's list) and this build has them,
 * else CPU with a one-line notice.
 *
 * The latents come back NHWC (Latent, what the NFA code reads) and the anomaly map per image at
 * the evaluation size Th×Tw; the NFA and the metrics stay in TypeScript (models/train/evaluate.ts).
 */
import { nchwToNhwcArray, nhwcToNchwArray } from '../layout.js';
import type { Latent } from '../scores/latent.js';
import type { NullFit } from '../scores/nfa-calibrated.js';
import { TreeNfaWorkspace } from '../scores/nfa-tree.js';
import { negLogNfaOf, type MapSet, type NfaMode } from '../train/evaluate.js';
import { toHW, type HW, type SizeInput } from '../size.js';

type Ort = typeof import('onnxruntime-node');
type OrtSession = import('onnxruntime-node').InferenceSession;

let loading: Promise<{ ort: Ort } | { reason: string }> | undefined;

/** onnxruntime-node, or why it cannot be used (one sentence). Loaded once. */
export function loadOrt(env: NodeJS.ProcessEnv = process.env): Promise<{ ort: Ort } | { reason: string }> {
  if (env.UFLOW_ORT_DISABLE === '1') return Promise.resolve({ reason: 'onnxruntime-node is disabled (UFLOW_ORT_DISABLE=1)' });
  loading ??= import('onnxruntime-node').then(
    (m) => {
      const ort = ((m as { default?: Ort }).default ?? m) as Ort;
      if (typeof ort.InferenceSession?.create !== 'function') return { reason: 'onnxruntime-node loaded without an InferenceSession' };
      // Its own log goes to stderr (a provider that fails to load prints a page): failures reach
      // us as exceptions and are reported in one line. UFLOW_ORT_LOG=verbose|info|warning|error to see it.
      ort.env.logLevel = (['verbose', 'info', 'warning', 'error'].includes(env.UFLOW_ORT_LOG ?? '') ? env.UFLOW_ORT_LOG : 'fatal') as typeof ort.env.logLevel;
      return { ort };
    },
    (e: unknown) => ({ reason: `onnxruntime-node did not load (${((e as Error)?.message ?? String(e)).split('\n')[0]})` }),
  );
  return loading;
}

/** The onnxruntime-node version, when it loaded. */
export function ortVersion(ort: Ort): string {
  return (ort.env as { versions?: { node?: string } }).versions?.node ?? 'unknown';
}

const PROVIDER_ALIASES: Record<string, string> = { directml: 'dml', gpu: 'cuda' };

/** Providers asked for: the list given, else UFLOW_ORT_PROVIDERS (comma-separated), else cpu. */
export function askedProviders(asked?: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const list = asked?.length ? [...asked] : (env.UFLOW_ORT_PROVIDERS ?? '').split(',');
  const out = list.map((p) => p.trim().toLowerCase()).filter(Boolean).map((p) => PROVIDER_ALIASES[p] ?? p);
  return out.length ? [...new Set(out)] : ['cpu'];
}

export interface OrtSessionOptions {
  /** [H, W] of the model's image input (an integer: square). */
  inputSize: SizeInput;
  /** [Th, Tw] of its anomaly_map output (an integer: square). */
  mapSize: SizeInput;
  /** Latent levels (outputs z0 … z{levels−1}). */
  levels: number;
  /** Execution providers in order of preference (see askedProviders); cpu is always the last resort. */
  providers?: readonly string[];
}

/** One exported model in an InferenceSession. */
export class OrtModelSession {
  private constructor(
    private readonly ort: Ort,
    private readonly session: OrtSession,
    /** The providers the session was created with. */
    readonly providers: string[],
    /** Set when a provider asked for was not available (one line). */
    readonly notice: string | undefined,
    readonly opts: OrtSessionOptions,
    /** Size of the ONNX model (weights included). */
    readonly bytes: number,
  ) {}

  /** A session on the model bytes; a provider that is not there (or fails to start) falls back to cpu with a notice. */
  static async create(ort: Ort, model: Uint8Array, opts: OrtSessionOptions): Promise<OrtModelSession> {
    const asked = askedProviders(opts.providers).filter((p) => p !== 'cpu');
    const supported = new Set(ort.listSupportedBackends().map((b) => b.name));
    const missing = asked.filter((p) => !supported.has(p));
    const usable = asked.filter((p) => supported.has(p));
    const notes: string[] = missing.length ? [`onnxruntime-node ${ortVersion(ort)} has no ${missing.join(', ')} execution provider here (it has ${[...supported].join(', ')})`] : [];
    if (usable.length) {
      try {
        const s = await ort.InferenceSession.create(model, { executionProviders: [...usable, 'cpu'] });
        return new OrtModelSession(ort, s, [...usable, 'cpu'], notes.length ? `${notes.join('; ')}: using ${usable.join(', ')}` : undefined, opts, model.length);
      } catch (e) {
        notes.push(`the ${usable.join(', ')} execution provider did not start (${((e as Error)?.message ?? String(e)).split('\n')[0]})`);
      }
    }
    const s = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
    return new OrtModelSession(ort, s, ['cpu'], notes.length ? `${notes.join('; ')}: running on cpu` : undefined, opts, model.length);
  }

  /** [H, W] of the image input. */
  get inputHW(): HW {
    return toHW(this.opts.inputSize);
  }

  /** [Th, Tw] of the anomaly maps. */
  get mapHW(): HW {
    return toHW(this.opts.mapSize, 'map size');
  }

  /** Latents (NHWC) and anomaly maps (Th×Tw per image) of B images given NHWC RGB [B, H, W, 3] in [0, 1]. */
  async run(nhwc: Float32Array, B: number): Promise<{ latents: Latent[]; anomaly: Float32Array[] }> {
    const [H, W] = this.inputHW;
    const [Th, Tw] = this.mapHW;
    const input = new this.ort.Tensor('float32', nhwcToNchwArray(nhwc, [B, H, W, 3]), [B, 3, H, W]);
    const out = await this.session.run({ image: input });
    const latents: Latent[] = [];
    for (let l = 0; l < this.opts.levels; l++) {
      const z = out[`z${l}`]!;
      const [b, c, h, w] = z.dims as [number, number, number, number];
      latents.push({ data: nchwToNhwcArray(z.data as Float32Array, [b, c, h, w]), shape: [b, h, w, c] });
    }
    const map = out.anomaly_map!.data as Float32Array;
    const TT = Th * Tw;
    if (map.length !== B * TT) throw new Error(`onnxruntime: anomaly_map holds ${map.length} values, expected ${B}×${Th}×${Tw}`);
    const anomaly = Array.from({ length: B }, (_, i) => map.slice(i * TT, (i + 1) * TT));
    for (const t of Object.values(out)) t.dispose?.();
    input.dispose?.();
    return { latents, anomaly };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The latents of one image out of a batch's. */
export function latentsOfImage(lat: readonly Latent[], b: number): Latent[] {
  return lat.map((z) => {
    const [, h, w, c] = z.shape;
    const per = h * w * c;
    return { data: z.data.subarray(b * per, (b + 1) * per), shape: [1, h, w, c] };
  });
}

function max(a: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  return m;
}

/**
 * computeMaps (models/train/evaluate.ts) on onnxruntime: N images, loaded `batchSize` at a time
 * (NHWC [n, H, W, 3] RGB in [0, 1]), through the session; the NFA on its latents, maps at the
 * session's map size [Th, Tw].
 */
export async function computeMapsOrt(
  session: OrtModelSession,
  N: number,
  loadBatch: (start: number, n: number) => Promise<Float32Array>,
  opts: { batchSize?: number; nfa?: NfaMode; calibration?: NullFit; signal?: AbortSignal; onProgress?(done: number, total: number): void } = {},
): Promise<MapSet> {
  const T = session.mapHW;
  const bs = Math.max(1, opts.batchSize ?? 8);
  const nfa = opts.nfa ?? 'tree';
  const out: MapSet = { targetSize: T, anomaly: [], negLogNfa: nfa === 'none' ? undefined : [], scores: [], maxNegLogNfa: [] };
  const ws = new TreeNfaWorkspace();
  for (let i = 0; i < N; i += bs) {
    if (opts.signal?.aborted) throw new DOMException('cancelled', 'AbortError');
    const n = Math.min(bs, N - i);
    const { latents, anomaly } = await session.run(await loadBatch(i, n), n);
    const nl = nfa === 'none' ? undefined : negLogNfaOf(latents, T, nfa, { ws, calibration: opts.calibration });
    const TT = T[0] * T[1];
    for (let b = 0; b < n; b++) {
      out.anomaly.push(anomaly[b]!);
      out.scores.push(max(anomaly[b]!));
      if (nl) {
        const m = nl.slice(b * TT, (b + 1) * TT);
        out.negLogNfa!.push(m);
        out.maxNegLogNfa.push(max(m));
      } else out.maxNegLogNfa.push(NaN);
    }
    opts.onProgress?.(i + n, N);
  }
  return out;
}
