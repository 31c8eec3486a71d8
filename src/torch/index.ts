// The public tensor API: `import * as torch from './torch/index.js'`.
export { Tensor, type Shape, type Scalar, type NestedArray, type TensorOrScalar } from './tensor.js';
export { DTYPES, ELEMENT_BYTES, isFloating, type DType, type AnyTypedArray } from './dtype.js';
export { tensor, zeros, ones, empty, full, arange, rand, randn, randint, type TensorOptions } from './creation.js';
export * from './functional.js';
export * from './grad-mode.js';
export { scope, keep } from './scope.js';
export { onGradReady, type GradReadyHooks } from './grad-hooks.js';
export { AdamW, clipGradNorm, gradNorm, zeroGrad, type AdamWOptions, type ParamGroup } from './optim.js';
export { toBytes, fromBytes } from './bytes.js';
