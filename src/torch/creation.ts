// Tensor factories. Options follow PyTorch: a dtype (float32 by default) and a device ('cpu' by default).
import { native } from './native.js';
import { dtypeCode, isFloating, sourceKindOf, type AnyTypedArray, type DType } from './dtype.js';
import { wrap, type NestedArray, type Scalar, type Shape, type Tensor } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

function finish(t: Tensor, opts: TensorOptions | undefined): Tensor {
  if (opts?.requiresGrad) t.requiresGrad_(true);
  return t;
}

function flattenNested(data: NestedArray, shape: number[], out: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new TypeError(`ragged nested array: expected ${shape[depth]} elements at depth ${depth}, got ${data.length}`);
    for (const d of data) flattenNested(d, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new TypeError('ragged nested array: a number where an array was expected');
    if (typeof data === 'boolean') out.push(data ? 1 : 0);
    else if (typeof data === 'number') out.push(data);
    else throw new TypeError(`tensor data must be numbers, booleans or nested arrays of them, got ${typeof data}`);
  }
}

/**
 * Creates a tensor from nested arrays or a typed array (copied). A typed array keeps its shape flat unless
 * `shape` is given; a Uint16Array (a window of token ids from a .bin file) becomes int64 in one native conversion.
 */
export function tensor(data: NestedArray | AnyTypedArray, opts: TensorOptions & { shape?: Shape } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const { code, natural } = sourceKindOf(data as AnyTypedArray);
    const shape = opts.shape ? [...opts.shape] : [(data as AnyTypedArray).length];
    const dtype = opts.dtype ?? natural;
    return finish(wrap(native.fromBuffer(data, code, shape, dtypeCode(dtype), opts.device)), opts);
  }
  const shape: number[] = [];
  const flat: number[] = [];
  flattenNested(data, shape, flat, 0);
  if (opts.shape) {
    const n = opts.shape.reduce((a, b) => a * b, 1);
    if (n !== flat.length) throw new RangeError(`shape [${opts.shape.join(', ')}] needs ${n} elements, data has ${flat.length}`);
  }
  const allBool = typeof firstLeaf(data) === 'boolean';
  const dtype = opts.dtype ?? (allBool ? 'bool' : 'float32');
  const src = isFloating(dtype) ? new Float64Array(flat) : dtype === 'bool' || dtype === 'uint8' ? Uint8Array.from(flat) : BigInt64Array.from(flat.map(checkedBigInt));
  const { code } = sourceKindOf(src);
  return finish(wrap(native.fromBuffer(src, code, opts.shape ? [...opts.shape] : shape, dtypeCode(dtype), opts.device)), opts);
}

function checkedBigInt(v: number): bigint {
  if (!Number.isInteger(v)) throw new TypeError(`integer tensor data must be integers, got ${v}`);
  return BigInt(v);
}

function firstLeaf(d: NestedArray): unknown {
  let x: unknown = d;
  while (Array.isArray(x)) x = x[0];
  return x;
}

const dt = (o?: TensorOptions): number => dtypeCode(o?.dtype ?? 'float32');

export function zeros(shape: Shape, opts?: TensorOptions): Tensor {
  return finish(wrap(native.zeros([...shape], dt(opts), opts?.device)), opts);
}
export function ones(shape: Shape, opts?: TensorOptions): Tensor {
  return finish(wrap(native.ones([...shape], dt(opts), opts?.device)), opts);
}
export function empty(shape: Shape, opts?: TensorOptions): Tensor {
  return finish(wrap(native.empty([...shape], dt(opts), opts?.device)), opts);
}
export function full(shape: Shape, value: Scalar, opts?: TensorOptions): Tensor {
  return finish(wrap(native.full([...shape], value, dt(opts), opts?.device)), opts);
}
/** arange(end) or arange(start, end, step?); int64 by default when all bounds are integers, as PyTorch. */
export function arange(start: number, end?: number, step = 1, opts?: TensorOptions): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  const dtype = opts?.dtype ?? (Number.isInteger(s) && Number.isInteger(e) && Number.isInteger(step) ? 'int64' : 'float32');
  return finish(wrap(native.arange(s, e, step, dtypeCode(dtype), opts?.device)), opts);
}
export function rand(shape: Shape, opts?: TensorOptions): Tensor {
  return finish(wrap(native.rand([...shape], dt(opts), opts?.device)), opts);
}
export function randn(shape: Shape, opts?: TensorOptions): Tensor {
  return finish(wrap(native.randn([...shape], dt(opts), opts?.device)), opts);
}
/** Integers uniformly in [low, high); int64 by default. */
export function randint(low: number, high: number, shape: Shape, opts?: TensorOptions): Tensor {
  return finish(wrap(native.randint(low, high, [...shape], dtypeCode(opts?.dtype ?? 'int64'), opts?.device)), opts);
}
