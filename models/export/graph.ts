/**
 * A small ONNX graph builder on the `onnx-proto` messages (protobufjs, generated from the official
 * onnx.proto): nodes in topological order, float32/int64 initializers, graph inputs and outputs
 * with symbolic batch dimensions, and the model's metadata_props. Encoding is protobufjs's.
 *
 * Values are referred to by name (strings); `node()` returns the names of its outputs, made
 * unique from a readable prefix, so the emitters read like the tfjs code they mirror.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type IAttribute = import('onnx-proto').onnx.IAttributeProto;
type INode = import('onnx-proto').onnx.INodeProto;
type ITensor = import('onnx-proto').onnx.ITensorProto;
type IValueInfo = import('onnx-proto').onnx.IValueInfoProto;

/** The default-domain opset the emitters target (Resize with `sizes`, Split with a `split` input, ReduceSum with an `axes` input). */
export const OPSET = 13;
/** IR version 7 goes with opset 13 (ONNX 1.8). */
export const IR_VERSION = 7;

export type AttrValue = number | string | number[] | { floats: number[] } | { int: number } | { float: number };

/** A dimension: a size, or a symbolic name (e.g. 'batch'). */
export type Dim = number | string;

const DT_FLOAT = onnx.TensorProto.DataType.FLOAT;
const DT_INT64 = onnx.TensorProto.DataType.INT64;

function attribute(name: string, v: AttrValue): IAttribute {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  if ('int' in v) return { name, type: T.INT, i: v.int };
  return { name, type: T.FLOAT, f: v.float };
}

function valueInfo(name: string, dims: readonly Dim[], elemType = DT_FLOAT): IValueInfo {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Little-endian bytes of a Float32Array (TensorProto.raw_data is little-endian on every platform). */
function f32Bytes(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i]!, true);
  return out;
}

export interface ModelOptions {
  graphName: string;
  producerVersion: string;
  docString?: string;
  /** model.metadata_props, in this order. */
  metadata: Record<string, string>;
}

export class GraphBuilder {
  private readonly nodes: INode[] = [];
  private readonly initializers: ITensor[] = [];
  private readonly inputs: IValueInfo[] = [];
  private readonly outputs: IValueInfo[] = [];
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, string>();

  /** A fresh value name from `prefix`. */
  fresh(prefix: string): string {
    const base = prefix.replace(/[^A-Za-z0-9_./:-]+/g, '_') || 'v';
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Declares a graph input (float32 unless told). */
  input(name: string, dims: readonly Dim[], elemType = DT_FLOAT): string {
    if (this.used.has(name)) throw new Error(`ONNX graph: the name '${name}' is taken`);
    this.used.add(name);
    this.inputs.push(valueInfo(name, dims, elemType));
    return name;
  }

  /** Declares `value` as a graph output named `name` (an Identity node renames it when needed). */
  output(value: string, name: string, dims: readonly Dim[]): void {
    if (value !== name) {
      if (this.used.has(name)) throw new Error(`ONNX graph: the name '${name}' is taken`);
      this.used.add(name);
      this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `${name}/identity` });
    }
    this.outputs.push(valueInfo(name, dims));
  }

  /** Adds a node; returns its output names (`outputs` of them, named from `name`). */
  node(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, name = op.toLowerCase(), outputs = 1): string[] {
    const outs = Array.from({ length: outputs }, (_, i) => this.fresh(outputs === 1 ? name : `${name}:${i}`));
    this.nodes.push({
      opType: op,
      input: [...inputs],
      output: outs,
      name: outs[0],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** A one-output node. */
  op(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(op, inputs, attrs, name)[0]!;
  }

  /** A float32 initializer. */
  weight(name: string, data: Float32Array, dims: readonly number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`ONNX initializer ${name}: ${data.length} values for dims [${dims.join(', ')}]`);
    const v = this.fresh(name);
    this.initializers.push({ name: v, dataType: DT_FLOAT, dims: [...dims], rawData: f32Bytes(data) });
    return v;
  }

  /** An int64 initializer (shared between uses of the same values). */
  int64(values: readonly number[], name = 'const_i64'): string {
    const key = `i64:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v = this.fresh(name);
    this.initializers.push({ name: v, dataType: DT_INT64, dims: [values.length], int64Data: [...values] });
    this.constCache.set(key, v);
    return v;
  }

  /** A float32 scalar initializer (shared between uses of the same value). */
  scalar(value: number, name = 'const_f32'): string {
    const key = `f32:${Math.fround(value)}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v = this.fresh(name);
    this.initializers.push({ name: v, dataType: DT_FLOAT, dims: [], rawData: f32Bytes(Float32Array.of(value)) });
    this.constCache.set(key, v);
    return v;
  }

  /** The serialised ModelProto. */
  encode(opts: ModelOptions): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: 'uflow-vscode',
      producerVersion: opts.producerVersion,
      docString: opts.docString ?? '',
      graph: {
        name: opts.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
      metadataProps: Object.entries(opts.metadata).map(([key, value]) => ({ key, value })),
    });
    const err = onnx.ModelProto.verify(model);
    if (err) throw new Error(`ONNX model: ${err}`);
    return onnx.ModelProto.encode(model).finish();
  }

  /** Numbers for a summary line. */
  stats(): { nodes: number; initializers: number; parameters: number } {
    let parameters = 0;
    for (const t of this.initializers) parameters += (t.dims ?? []).reduce<number>((a, b) => a * Number(b), 1);
    return { nodes: this.nodes.length, initializers: this.initializers.length, parameters };
  }
}

/** Decodes a serialised model (for tests and `uflow export`'s summary): metadata and the ops used. */
export function readModelInfo(bytes: Uint8Array): { metadata: Record<string, string>; ops: Map<string, number>; opset: number; irVersion: number } {
  const m = onnx.ModelProto.decode(bytes);
  const metadata: Record<string, string> = {};
  for (const p of m.metadataProps) metadata[p.key ?? ''] = p.value ?? '';
  const ops = new Map<string, number>();
  for (const n of m.graph?.node ?? []) ops.set(n.opType ?? '', (ops.get(n.opType ?? '') ?? 0) + 1);
  const opset = Number(m.opsetImport.find((o) => !o.domain)?.version ?? 0);
  return { metadata, ops, opset, irVersion: Number(m.irVersion) };
}
