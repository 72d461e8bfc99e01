/**
 * Cast for tfjs-backend-wasm that shares the data when the dtype does not change (as the cpu
 * backend's Cast does): wasm's copies it, and every ReLU's gradient (dy · cast(step(x), 'float32'))
 * casts float32 to float32, ~6 ms per size-0.5 training step. Other casts go to wasm's own kernel.
 */
import type {CastAttrs, KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {sharedIdentity} from './identity.js';
import type {KernelArgs} from './kernel-utils.js';

/** Whether config is already the wrapper below (so that registering twice never wraps it again). */
export function isDtrainCast(config: KernelConfig): boolean {
  return config.kernelFunc.name === 'dtrainCast';
}

/** Wraps wasm's own Cast, which still converts between dtypes. */
export function makeCastConfig(wasmOwn: KernelConfig): KernelConfig {
  function dtrainCast(args: KernelArgs<CastAttrs>): TensorInfo {
    if (args.inputs.x.dtype === args.attrs!.dtype) return sharedIdentity({inputs: args.inputs, backend: args.backend});
    return wasmOwn.kernelFunc(args as Parameters<KernelFunc>[0]) as TensorInfo;
  }
  return {...wasmOwn, kernelFunc: dtrainCast as unknown as KernelFunc};
}
