// Raw-byte conversion for serialisation (safetensors): tensors to little-endian bytes and back, any dtype.
import { native } from './native.js';
import { dtypeCode, ELEMENT_BYTES, type DType } from './dtype.js';
import { wrap, type Tensor } from './tensor.js';

/** The tensor's elements as row-major little-endian bytes (a copy). */
export function toBytes(t: Tensor): Uint8Array {
  return new Uint8Array(native.toBuffer(t.handle) as ArrayBuffer);
}

/** A new tensor holding a copy of `bytes`, interpreted as `dtype` elements of `shape`. */
export function fromBytes(bytes: Uint8Array, dtype: DType, shape: readonly number[]): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel * ELEMENT_BYTES[dtype] !== bytes.byteLength) {
    throw new RangeError(`${bytes.byteLength} bytes cannot hold a ${dtype} tensor of shape [${shape.join(', ')}]`);
  }
  const code = dtypeCode(dtype);
  return wrap(native.fromBuffer(bytes, code, [...shape], code));
}
