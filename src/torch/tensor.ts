// The Tensor class: a typed, disposable wrapper over a native libtorch tensor handle, with PyTorch's method names
// in camelCase. Every tensor registers with the current scope() so loops release memory deterministically.
import { native, type Handle } from './native.js';
import { dtypeCode, dtypeName, sourceKindOf, viewBytes, type AnyTypedArray, type DType } from './dtype.js';
import { setTensorTest, track } from './scope.js';

export type Shape = readonly number[];
export type Device = string;
export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;
export type NestedArray = number | boolean | NestedArray[];

function h(x: TensorOrScalar): Handle | Scalar {
  return x instanceof Tensor ? x.handle : x;
}

function dimsArg(dims: number | readonly number[]): number[] {
  return typeof dims === 'number' ? [dims] : [...dims];
}

export class Tensor {
  #handle: Handle | null;
  #shape: number[] | undefined;

  /** Wraps a native handle; user code creates tensors through `tensor()`, `zeros()`, ops and so on. */
  constructor(handle: Handle) {
    this.#handle = handle;
    track(this);
  }

  /** The native handle. Throws if the tensor was disposed. */
  get handle(): Handle {
    if (this.#handle === null) throw new Error('tensor used after dispose()');
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === null;
  }

  /** Releases this handle's reference to the native storage now (views share storage; it is freed with the last). */
  dispose(): void {
    if (this.#handle === null) return;
    native.dispose(this.#handle);
    this.#handle = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  get shape(): number[] {
    this.#shape ??= native.shape(this.handle) as number[];
    return [...this.#shape];
  }
  get ndim(): number {
    this.#shape ??= native.shape(this.handle) as number[];
    return this.#shape.length;
  }
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`dimension ${dim} out of range for a ${s.length}-d tensor`);
    return s[d]!;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return dtypeName(native.dtype(this.handle) as number);
  }
  get device(): Device {
    return native.device(this.handle) as string;
  }
  get isContiguous(): boolean {
    return native.isContiguous(this.handle) as boolean;
  }

  // ---- autograd
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle) as boolean;
  }
  set requiresGrad(v: boolean) {
    native.setRequiresGrad(this.handle, v);
  }
  requiresGrad_(v = true): this {
    native.setRequiresGrad(this.handle, v);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle) as boolean;
  }
  /** The accumulated gradient as a new handle (dispose it or use a scope), or null. */
  get grad(): Tensor | null {
    return wrapOrNull(native.grad(this.handle) as Handle | null);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }
  retainGrad(): this {
    native.retainGrad(this.handle);
    return this;
  }
  /** Backpropagates from this tensor (a scalar unless `gradient` is given). */
  backward(gradient?: Tensor, retainGraph = false): void {
    native.backward(this.handle, gradient?.handle, retainGraph);
  }
  /** The same, on a libuv worker thread: the event loop stays responsive during a long backward pass. */
  backwardAsync(gradient?: Tensor): Promise<void> {
    return native.backwardAsync(this.handle, gradient?.handle) as Promise<void>;
  }

  // ---- conversion
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    let dtype: DType | undefined;
    let device: Device | undefined;
    if (typeof target === 'string') {
      if (isDtypeName(target)) dtype = target;
      else device = target;
    } else {
      dtype = target.dtype;
      device = target.device;
    }
    return wrap(native.to(this.handle, dtype === undefined ? undefined : dtypeCode(dtype), device));
  }
  float(): Tensor {
    return this.to('float32');
  }
  long(): Tensor {
    return this.to('int64');
  }
  contiguous(): Tensor {
    return wrap(native.contiguous(this.handle));
  }
  clone(): Tensor {
    return wrap(native.clone(this.handle));
  }
  detach(): Tensor {
    return wrap(native.detach(this.handle));
  }
  /** Raw element data in row-major order; bfloat16/float16 as 16-bit patterns in a Uint16Array. */
  toTypedArray(): AnyTypedArray {
    return viewBytes(this.dtype, native.toBuffer(this.handle) as ArrayBuffer);
  }
  /** Nested JS arrays of numbers (booleans for bool tensors). */
  toArray(): NestedArray {
    const dtype = this.dtype;
    let flat: ArrayLike<number | bigint>;
    if (dtype === 'bfloat16' || dtype === 'float16') {
      const f = this.to('float32');
      flat = f.toTypedArray() as Float32Array;
      f.dispose();
    } else {
      flat = this.toTypedArray() as ArrayLike<number | bigint>;
    }
    const conv = (v: number | bigint): number | boolean => (dtype === 'bool' ? v !== 0 : Number(v));
    const shape = this.shape;
    if (shape.length === 0) return conv(flat[0]!);
    let offset = 0;
    const build = (d: number): NestedArray[] => {
      const out: NestedArray[] = [];
      for (let i = 0; i < shape[d]!; i++) out.push(d === shape.length - 1 ? conv(flat[offset++]!) : build(d + 1));
      return out;
    };
    return build(0);
  }
  /** The value of a one-element tensor. */
  item(): number {
    return Number(native.item(this.handle));
  }
  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : (native.describe(this.handle) as string);
  }

  // ---- in-place initialisation
  normal_(mean = 0, std = 1): this {
    native.normal_(this.handle, mean, std);
    return this;
  }
  uniform_(from = 0, to = 1): this {
    native.uniform_(this.handle, from, to);
    return this;
  }
  zero_(): this {
    native.zero_(this.handle);
    return this;
  }
  fill_(v: Scalar): this {
    native.fill_(this.handle, v);
    return this;
  }

  // ---- shape
  view(...shape: number[] | [readonly number[]]): Tensor {
    return wrap(native.view(this.handle, shapeArgs(shape)));
  }
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    return wrap(native.reshape(this.handle, shapeArgs(shape)));
  }
  transpose(d0: number, d1: number): Tensor {
    return wrap(native.transpose(this.handle, d0, d1));
  }
  get T(): Tensor {
    return this.transpose(-2, -1);
  }
  permute(...dims: number[]): Tensor {
    return wrap(native.permute(this.handle, dims));
  }
  unsqueeze(dim: number): Tensor {
    return wrap(native.unsqueeze(this.handle, dim));
  }
  squeeze(dim?: number): Tensor {
    return wrap(native.squeeze(this.handle, dim));
  }
  expand(...shape: number[] | [readonly number[]]): Tensor {
    return wrap(native.expand(this.handle, shapeArgs(shape)));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(native.narrow(this.handle, dim, start, length));
  }
  select(dim: number, index: number): Tensor {
    return wrap(native.select(this.handle, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(native.indexSelect(this.handle, dim, index.handle));
  }
  split(sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
    return wrapList(native.split(this.handle, typeof sizeOrSizes === 'number' ? sizeOrSizes : [...sizeOrSizes], dim));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapList(native.chunk(this.handle, chunks, dim));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(native.flatten(this.handle, startDim, endDim));
  }

  // ---- elementwise math (tensor or scalar on the right, with broadcasting)
  add(o: TensorOrScalar): Tensor {
    return wrap(native.add(this.handle, h(o)));
  }
  sub(o: TensorOrScalar): Tensor {
    return wrap(native.sub(this.handle, h(o)));
  }
  mul(o: TensorOrScalar): Tensor {
    return wrap(native.mul(this.handle, h(o)));
  }
  div(o: TensorOrScalar): Tensor {
    return wrap(native.div(this.handle, h(o)));
  }
  pow(o: TensorOrScalar): Tensor {
    return wrap(native.pow(this.handle, h(o)));
  }
  maximum(o: TensorOrScalar): Tensor {
    return wrap(native.maximum(this.handle, h(o)));
  }
  eq(o: TensorOrScalar): Tensor {
    return wrap(native.eq(this.handle, h(o)));
  }
  ne(o: TensorOrScalar): Tensor {
    return wrap(native.ne(this.handle, h(o)));
  }
  lt(o: TensorOrScalar): Tensor {
    return wrap(native.lt(this.handle, h(o)));
  }
  le(o: TensorOrScalar): Tensor {
    return wrap(native.le(this.handle, h(o)));
  }
  gt(o: TensorOrScalar): Tensor {
    return wrap(native.gt(this.handle, h(o)));
  }
  ge(o: TensorOrScalar): Tensor {
    return wrap(native.ge(this.handle, h(o)));
  }
  sqrt(): Tensor {
    return wrap(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return wrap(native.rsqrt(this.handle));
  }
  exp(): Tensor {
    return wrap(native.exp(this.handle));
  }
  log(): Tensor {
    return wrap(native.log(this.handle));
  }
  tanh(): Tensor {
    return wrap(native.tanh(this.handle));
  }
  neg(): Tensor {
    return wrap(native.neg(this.handle));
  }
  abs(): Tensor {
    return wrap(native.abs(this.handle));
  }
  sigmoid(): Tensor {
    return wrap(native.sigmoid(this.handle));
  }
  relu(): Tensor {
    return wrap(native.relu(this.handle));
  }
  logicalNot(): Tensor {
    return wrap(native.logicalNot(this.handle));
  }
  clamp(min?: number, max?: number): Tensor {
    return wrap(native.clamp(this.handle, min, max));
  }
  maskedFill(mask: Tensor, value: Scalar): Tensor {
    return wrap(native.maskedFill(this.handle, mask.handle, value));
  }
  tril(diagonal = 0): Tensor {
    return wrap(native.tril(this.handle, diagonal));
  }
  triu(diagonal = 0): Tensor {
    return wrap(native.triu(this.handle, diagonal));
  }

  // ---- linear algebra
  matmul(o: Tensor): Tensor {
    return wrap(native.matmul(this.handle, o.handle));
  }
  bmm(o: Tensor): Tensor {
    return wrap(native.bmm(this.handle, o.handle));
  }

  // ---- reductions
  sum(dims?: number | readonly number[], keepdim = false, dtype?: DType): Tensor {
    return wrap(native.sum(this.handle, dims === undefined ? undefined : dimsArg(dims), keepdim, dtype && dtypeCode(dtype)));
  }
  mean(dims?: number | readonly number[], keepdim = false, dtype?: DType): Tensor {
    return wrap(native.mean(this.handle, dims === undefined ? undefined : dimsArg(dims), keepdim, dtype && dtypeCode(dtype)));
  }
  /** max() over everything → a scalar tensor; max(dim) → {values, indices}. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return wrap(native.max(this.handle));
    const [values, indices] = wrapList(native.max(this.handle, dim, keepdim));
    return { values: values!, indices: indices! };
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return wrap(native.min(this.handle));
    const [values, indices] = wrapList(native.min(this.handle, dim, keepdim));
    return { values: values!, indices: indices! };
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return wrap(dim === undefined ? native.argmax(this.handle) : native.argmax(this.handle, dim, keepdim));
  }
  norm(p = 2, dims?: number | readonly number[], keepdim = false): Tensor {
    return wrap(native.norm(this.handle, p, dims === undefined ? undefined : dimsArg(dims), keepdim));
  }
  cumsum(dim: number): Tensor {
    return wrap(native.cumsum(this.handle, dim));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(native.gather(this.handle, dim, index.handle));
  }
  scatter(dim: number, index: Tensor, value: Scalar): Tensor {
    return wrap(native.scatter(this.handle, dim, index.handle, value));
  }

  // ---- in place (what an optimizer needs); they return `this`
  add_(o: TensorOrScalar, alpha?: number): this {
    if (alpha !== undefined && o instanceof Tensor) native.addScaled_(this.handle, o.handle, alpha);
    else native.add_(this.handle, h(o));
    return this;
  }
  sub_(o: TensorOrScalar): this {
    native.sub_(this.handle, h(o));
    return this;
  }
  mul_(o: TensorOrScalar): this {
    native.mul_(this.handle, h(o));
    return this;
  }
  div_(o: TensorOrScalar): this {
    native.div_(this.handle, h(o));
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    native.addcmul_(this.handle, a.handle, b.handle, value);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    native.addcdiv_(this.handle, a.handle, b.handle, value);
    return this;
  }
  lerp_(end: Tensor, weight: TensorOrScalar): this {
    native.lerp_(this.handle, end.handle, h(weight));
    return this;
  }
  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return this;
  }
  clamp_(min?: number, max?: number): this {
    native.clamp_(this.handle, min, max);
    return this;
  }

  /** Exact equality of shape and values. */
  equal(o: Tensor): boolean {
    return native.equal(this.handle, o.handle) as boolean;
  }
  allclose(o: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return native.allclose(this.handle, o.handle, rtol, atol) as boolean;
  }
}

setTensorTest((v): v is Tensor => v instanceof Tensor);

const DTYPE_SET = new Set(['float32', 'float64', 'bfloat16', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool']);
function isDtypeName(s: string): s is DType {
  return DTYPE_SET.has(s);
}

function shapeArgs(args: number[] | [readonly number[]]): number[] {
  return Array.isArray(args[0]) ? [...(args[0] as readonly number[])] : (args as number[]);
}

/** Wraps a handle returned by the addon. */
export function wrap(handle: unknown): Tensor {
  return new Tensor(handle as Handle);
}
function wrapOrNull(handle: Handle | null): Tensor | null {
  return handle === null ? null : new Tensor(handle);
}
export function wrapList(handles: unknown): Tensor[] {
  return (handles as Handle[]).map((x) => new Tensor(x));
}
