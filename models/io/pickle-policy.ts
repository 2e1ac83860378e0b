/**
 * What a weights pickle may name (the unpickler's allow-list, pickle.ts) and the error for anything
 * else: the storage classes and tensor rebuild functions torch.save emits, a few container types.
 */
import { TensorFileError } from './safetensors.js';

/** The pickle asked for something a weights file never needs; nothing was executed. */
export class UnsafePickleError extends TensorFileError {
  constructor(
    file: string,
    /** the refused global ('os.system') or opcode ('INST') */
    readonly offending: string,
    problem: string,
  ) {
    super(file, problem);
    this.name = 'UnsafePickleError';
  }
}

/** The callables torch.save emits for tensors, storages and containers. */
export const TORCH_STORAGE_CLASSES = [
  'FloatStorage',
  'HalfStorage',
  'BFloat16Storage',
  'DoubleStorage',
  'LongStorage',
  'IntStorage',
  'CharStorage',
  'ByteStorage',
  'BoolStorage',
  'ShortStorage',
] as const;

/**
 * Every global a weights pickle may name. Classes and functions here are only ever matched by
 * name; their "calls" are interpreted by `reduce` / `newobj` below.
 */
export const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
  'collections.OrderedDict',
  'builtins.set',
  'builtins.frozenset',
  'builtins.bytearray',
  '_codecs.encode', // how protocol 2 writes a Python 3 bytes object
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
  'torch.Tensor',
  'torch.nn.parameter.Parameter',
  'torch.Size',
  ...TORCH_STORAGE_CLASSES.map((s) => `torch.${s}`),
]);

/** Python 2 module names that Python 3's unpickler maps (fix_imports). */
export const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

export const TENSOR_REBUILDERS = new Set([
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
]);

