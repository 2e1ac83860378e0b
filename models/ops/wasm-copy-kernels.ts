/**
 * Slice, SplitV, Concat and a last-axis GatherV2 for the wasm backend, copying inside the wasm heap;
 * Identity and same-dtype Cast, not copying at all (fastIdentity).
 *
 * tfjs-backend-wasm 4.22 runs these three kernels in JavaScript: Slice first copies its whole input
 * out of the heap (`readSync` is `HEAPU8.slice`), then copies each innermost row with a fresh
 * `subarray` + `set`; SplitV does that once per output; Concat allocates a `subarray` per row. On a
 * U-Flow training step that made them a third of the kernel time (bench/profile-step.ts: Slice
 * 23 %, SplitV 5 %, Concat 3 %), mostly the 9 tap slices of every 3×3 filter gradient and the
 * coupling's channel splits, whose rows are only 8–256 floats long.
 *
 * These kernels compute the same values (byte copies: bit-identical, NaN payloads included) with
 * `copyWithin` on one view of the heap for long rows and a plain loop for short ones, and nothing
 * allocated per row. Other dtypes than the 4-byte ones (float32, int32) go to the stock kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, slice_util, util, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  incRef(dataId: object): void;
}

/** Rows shorter than this are copied by a loop (copyWithin's call costs more than it saves). */
const LOOP_BELOW = 24;
const MARK = Symbol.for('uflow.wasmCopyKernel');

function isWordType(dtype: tf.DataType): boolean {
  return dtype === 'float32' || dtype === 'int32';
}

/** Element offset (4-byte words) of a tensor in the heap. */
function wordOffset(backend: WasmBackend, t: TensorInfo): number {
  const d = backend.dataIdMap.get(t.dataId);
  if (!d) throw new Error('wasm copy kernel: tensor data not found in the wasm backend');
  return d.memoryOffset >>> 2;
}

function copyRow(heap: Int32Array, dst: number, src: number, n: number): void {
  if (n >= LOOP_BELOW) heap.copyWithin(dst, src, src + n);
  else for (let i = 0; i < n; i++) heap[dst + i] = heap[src + i]!;
}

/**
 * Copies the box `size` starting at `begin` of a row-major tensor of `shape` (at word `src`) to a
 * contiguous destination (at word `dst`). Trailing axes the box spans whole are merged into one row.
 */
function copyBox(heap: Int32Array, src: number, shape: readonly number[], begin: readonly number[], size: readonly number[], dst: number): void {
  const rank = shape.length;
  const strides = util.computeStrides([...shape]);
  let base = src;
  for (let a = 0; a < rank - 1; a++) base += begin[a]! * strides[a]!;
  base += begin[rank - 1] ?? 0;
  // Merge trailing axes that are copied whole into one row.
  let last = rank - 1;
  let row = size[last] ?? 1;
  while (last > 0 && size[last] === shape[last]) {
    row *= size[last - 1]!;
    last--;
  }
  if (last <= 0) {
    copyRow(heap, dst, base, row);
    return;
  }
  // Iterate over the outer axes 0..last-1 (the row axis `last` is merged into `row`).
  const outer = size.slice(0, last);
  const outerStrides = strides.slice(0, last);
  const idx = new Array<number>(last).fill(0);
  const count = outer.reduce((p, s) => p * s, 1);
  let o = dst;
  for (let n = 0; n < count; n++) {
    let s = base;
    for (let a = 0; a < last; a++) s += idx[a]! * outerStrides[a]!;
    copyRow(heap, o, s, row);
    o += row;
    for (let a = last - 1; a >= 0; a--) {
      if (++idx[a]! < outer[a]!) break;
      idx[a] = 0;
    }
  }
}

function sliceInHeap(backend: WasmBackend, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  if (util.sizeFromShape(size) === 0) return out;
  // A view taken after makeOutput: the allocation may have grown (and detached) the heap.
  const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
  copyBox(heap, wordOffset(backend, x), x.shape, begin, size, wordOffset(backend, out));
  return out;
}

function fastSlice(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, attrs, backend } = args as unknown as { inputs: { x: TensorInfo }; attrs: { begin: number | number[]; size: number | number[] }; backend: WasmBackend };
    const x = inputs.x;
    if (!isWordType(x.dtype)) return stock(args);
    const [begin, size] = slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
    return sliceInHeap(backend, x, begin, size);
  };
}

function fastSplitV(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, attrs, backend } = args as unknown as { inputs: { x: TensorInfo }; attrs: { numOrSizeSplits: number | number[]; axis: number }; backend: WasmBackend };
    const x = inputs.x;
    if (!isWordType(x.dtype)) return stock(args);
    const axis = util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const splits = backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    return splits.map((s) => {
      const size = [...x.shape];
      size[axis] = s;
      const out = sliceInHeap(backend, x, [...begin], size);
      begin[axis] += s;
      return out;
    });
  };
}

function fastConcat(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, attrs, backend } = args as unknown as { inputs: TensorInfo[]; attrs: { axis: number }; backend: WasmBackend };
    const list = inputs.filter((t) => util.sizeFromShape(t.shape) > 0);
    if (list.length < 2 || !list.every((t) => isWordType(t.dtype) && t.dtype === list[0]!.dtype)) return stock(args);
    const axis = util.parseAxisParam(attrs.axis, inputs[0]!.shape)[0]!;
    backend_util.assertParamsConsistent(inputs.map((t) => t.shape), axis);
    const outShape = backend_util.computeOutShape(inputs.map((t) => t.shape), axis);
    const out = backend.makeOutput(outShape, list[0]!.dtype);
    const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
    const outer = util.sizeFromShape(list[0]!.shape.slice(0, axis));
    const inner = list.map((t) => util.sizeFromShape(t.shape.slice(axis)));
    const srcs = list.map((t) => wordOffset(backend, t));
    let o = wordOffset(backend, out);
    for (let b = 0; b < outer; b++) {
      for (let i = 0; i < list.length; i++) {
        copyRow(heap, o, srcs[i]! + b * inner[i]!, inner[i]!);
        o += inner[i]!;
      }
    }
    return out;
  };
}

/**
 * GatherV2 on the last axis with 1-D int32 indices (a channel permutation or selection): one loop
 * over the heap, no C²-work product. Anything else goes to the stock kernel.
 */
function fastGather(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, attrs, backend } = args as unknown as { inputs: { x: TensorInfo; indices: TensorInfo }; attrs: { axis: number; batchDims?: number }; backend: WasmBackend };
    const { x, indices } = inputs;
    const rank = x.shape.length;
    const axis = rank ? util.parseAxisParam(attrs.axis, x.shape)[0]! : -1;
    if (!isWordType(x.dtype) || indices.dtype !== 'int32' || indices.shape.length !== 1 || (attrs.batchDims ?? 0) !== 0 || rank < 1 || axis !== rank - 1) return stock(args);
    const c = x.shape[rank - 1]!;
    const k = indices.shape[0]!;
    const out = backend.makeOutput([...x.shape.slice(0, -1), k], x.dtype);
    const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
    const idx = heap.slice(wordOffset(backend, indices), wordOffset(backend, indices) + k);
    for (let i = 0; i < k; i++) {
      if (idx[i]! < 0 || idx[i]! >= c) throw new Error(`GatherV2: the index value ${idx[i]} is not in [0, ${c - 1}]`);
    }
    const outer = util.sizeFromShape(x.shape.slice(0, -1));
    const src = wordOffset(backend, x);
    const dst = wordOffset(backend, out);
    for (let o = 0; o < outer; o++) {
      const s = src + o * c;
      const d = dst + o * k;
      for (let i = 0; i < k; i++) heap[d + i] = heap[s + idx[i]!]!;
    }
    return out;
  };
}

/**
 * Identity without a copy: the output shares the input's heap data (one more reference), as the cpu
 * backend's Identity and the wasm backend's own Reshape do. Tensor data is immutable (a variable's
 * assign replaces its data, it never writes into it), so sharing is safe; the stock kernel copied
 * every byte, about 1.2 GB per training step at the bench's shapes (tfjs' gradient bookkeeping
 * and customGrad call it some 800 times a step).
 */
function fastIdentity(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, backend } = args as unknown as { inputs: { x: TensorInfo }; backend: WasmBackend };
    const x = inputs.x;
    if (x.dtype === 'string') return stock(args);
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  };
}

/** Cast to the dtype the tensor already has (tfjs' gradients do this often): the same sharing. */
function fastCast(stock: KernelFunc): KernelFunc {
  const identity = fastIdentity(stock);
  return (args) => {
    const { inputs, attrs } = args as unknown as { inputs: { x: TensorInfo }; attrs: { dtype: tf.DataType } };
    return attrs.dtype === inputs.x.dtype ? identity(args) : stock(args);
  };
}

function isOurs(cfg: tf.KernelConfig | undefined): boolean {
  return !!cfg && !!(cfg.kernelFunc as unknown as Record<symbol, boolean>)[MARK];
}

/** Whether registerWasmCopyKernels is in effect (its gather makes a channel permutation a copy). */
export function wasmCopyKernelsActive(): boolean {
  return isOurs(tf.getKernel('GatherV2', 'wasm'));
}

/**
 * Replaces the wasm backend's Slice, SplitV, Concat, GatherV2, Identity and Cast with the ones above. Idempotent;
 * a no-op where tfjs-backend-wasm is not registered. Kernels are looked up per call, so this takes
 * effect at once, before or after tf.setBackend('wasm').
 */
export function registerWasmCopyKernels(): void {
  const makers: Record<string, (stock: KernelFunc) => KernelFunc> = { Slice: fastSlice, SplitV: fastSplitV, Concat: fastConcat, GatherV2: fastGather, Identity: fastIdentity, Cast: fastCast };
  for (const [name, make] of Object.entries(makers)) {
    const cfg = tf.getKernel(name, 'wasm');
    if (!cfg || isOurs(cfg)) continue;
    const func = make(cfg.kernelFunc);
    (func as unknown as Record<symbol, boolean>)[MARK] = true;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...cfg, kernelFunc: func });
  }
}
