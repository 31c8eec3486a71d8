// Tensor element types. Names follow PyTorch; the codes are c10::ScalarType values understood by the addon.
export type DType = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};
const NAMES = new Map<number, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

/** The addon's code for the raw uint16 source kind (token files); torch 1.13 has no uint16 dtype. */
export const UINT16_SOURCE = -16;

export const DTYPES = Object.keys(CODES) as DType[];

export function dtypeCode(d: DType): number {
  const c = CODES[d];
  if (c === undefined) throw new TypeError(`unknown dtype '${String(d)}' (valid: ${DTYPES.join(', ')})`);
  return c;
}

export function dtypeName(code: number): DType {
  const n = NAMES.get(code);
  if (n === undefined) throw new TypeError(`tensor has a dtype this API does not expose (code ${code})`);
  return n;
}

export const ELEMENT_BYTES: Record<DType, number> = {
  uint8: 1, int8: 1, bool: 1, int16: 2, float16: 2, bfloat16: 2, int32: 4, float32: 4, int64: 8, float64: 8,
};

export function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'bfloat16' || d === 'float16';
}

export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int64'
      ? BigInt64Array
      : D extends 'int32'
        ? Int32Array
        : D extends 'int16'
          ? Int16Array
          : D extends 'int8'
            ? Int8Array
            : D extends 'bfloat16' | 'float16'
              ? Uint16Array
              : Uint8Array;

export type AnyTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** The typed array class that views the raw bytes of a tensor of this dtype (16-bit floats as raw bit patterns). */
export function viewBytes(d: DType, buf: ArrayBuffer): AnyTypedArray {
  switch (d) {
    case 'float32': return new Float32Array(buf);
    case 'float64': return new Float64Array(buf);
    case 'int64': return new BigInt64Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'int16': return new Int16Array(buf);
    case 'int8': return new Int8Array(buf);
    case 'bfloat16':
    case 'float16': return new Uint16Array(buf);
    case 'uint8':
    case 'bool': return new Uint8Array(buf);
  }
}

/** The source dtype code for a typed array handed to `tensor()`. */
export function sourceKindOf(a: AnyTypedArray): { code: number; natural: DType } {
  if (a instanceof Float32Array) return { code: CODES.float32, natural: 'float32' };
  if (a instanceof Float64Array) return { code: CODES.float64, natural: 'float64' };
  if (a instanceof BigInt64Array) return { code: CODES.int64, natural: 'int64' };
  if (a instanceof Int32Array) return { code: CODES.int32, natural: 'int32' };
  if (a instanceof Int16Array) return { code: CODES.int16, natural: 'int16' };
  if (a instanceof Int8Array) return { code: CODES.int8, natural: 'int8' };
  if (a instanceof Uint16Array) return { code: UINT16_SOURCE, natural: 'int64' };
  if (a instanceof Uint8Array) return { code: CODES.uint8, natural: 'uint8' };
  throw new TypeError('unsupported typed array for a tensor');
}
