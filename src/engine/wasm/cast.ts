/**
 * Cast for tfjs-backend-wasm that shares the data when the dtype does not change (as the cpu
 * backend's Cast does): wasm's copies it, and every ReLU's gradient (dy · cast(step(x), 'float32'))
 * casts float32 to float32, ~6 ms per size-0.5 training step. Other casts go to wasm's own kernel.
 */
import type {CastAttrs, TensorInfo} from '@tensorflow/tfjs-core';

import {sharedIdentity} from './identity.js';
import type {KernelArgs} from './kernel-utils.js';

/** A same-dtype cast as a shared Identity, else undefined: wasm's own Cast's fast path. */
export function sameDtypeCast(args: KernelArgs<CastAttrs>): TensorInfo | undefined {
  return args.inputs.x.dtype === args.attrs!.dtype ? sharedIdentity({inputs: args.inputs, backend: args.backend}) : undefined;
}
