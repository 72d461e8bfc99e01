/**
 * Registers for tfjs-backend-wasm the training kernels it lacks (Conv2DBackpropFilter and the two
 * depthwise backprops), a faster forward Conv2D and Conv2DBackpropInput for 1×1 convs and forward
 * depthwise conv, the fused BatchNorm kernels (for wasm and cpu; the forward's one pass for wasm only), and an Identity and
 * a same-dtype Cast that share instead of copying. Idempotent; call before tf.setBackend('wasm').
 */
import '@tensorflow/tfjs-backend-wasm';
import {Cast, Conv2D, Conv2DBackpropInput, DepthwiseConv2dNative, getKernel} from '@tensorflow/tfjs-core';
import type {KernelConfig, TensorInfo} from '@tensorflow/tfjs-core';

import {registerBatchNormKernels} from '../batchnorm-kernels.js';
import {sameDtypeCast} from './cast.js';
import {conv2DBackpropFilterConfig} from './conv2d-backprop-filter.js';
import {pointwiseBackpropInput} from './conv2d-backprop-input.js';
import {pointwiseConv2D} from './conv2d-pointwise.js';
import {depthwiseConv2dNativeBackpropFilterConfig} from './depthwise-backprop-filter.js';
import {depthwiseConv2dNativeBackpropInputConfig} from './depthwise-backprop-input.js';
import {simdDepthwiseConv} from './depthwise-forward.js';
import {sharedIdentityConfig} from './identity.js';
import {hasFastPath, type KernelArgs, replaceKernel, withFastPath} from './kernel-utils.js';

/** Gives wasm's own kernel `name` dtrain's fast path for some of its cases (the rest stay its own). */
function addFastPath<A>(name: string, fast: (args: KernelArgs<A>) => TensorInfo | undefined): void {
  const wasmOwn = getKernel(name, 'wasm') as KernelConfig | undefined;
  if (wasmOwn !== undefined && !hasFastPath(wasmOwn)) replaceKernel(withFastPath(wasmOwn, fast));
}

let registered = false;
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  replaceKernel(conv2DBackpropFilterConfig);
  replaceKernel(depthwiseConv2dNativeBackpropFilterConfig);
  replaceKernel(depthwiseConv2dNativeBackpropInputConfig);
  addFastPath(Conv2D, pointwiseConv2D);
  addFastPath(Conv2DBackpropInput, pointwiseBackpropInput);
  addFastPath(DepthwiseConv2dNative, simdDepthwiseConv);
  addFastPath(Cast, sameDtypeCast);
  replaceKernel(sharedIdentityConfig);
  registerBatchNormKernels();
}
