/**
 * Registers for tfjs-backend-wasm the training kernels it lacks (Conv2DBackpropFilter and the two
 * depthwise backprops), a faster forward Conv2D and Conv2DBackpropInput for 1×1 convs and forward
 * depthwise conv, the fused BatchNorm kernels (for wasm and cpu; the forward's one pass for wasm only), and an Identity and
 * a same-dtype Cast that share instead of copying. Idempotent; call before tf.setBackend('wasm').
 */
import '@tensorflow/tfjs-backend-wasm';
import {Cast, Conv2D, Conv2DBackpropInput, DepthwiseConv2dNative, getKernel} from '@tensorflow/tfjs-core';
import type {KernelConfig} from '@tensorflow/tfjs-core';

import {registerBatchNormKernels} from '../batchnorm-kernels.js';
import {isDtrainCast, makeCastConfig} from './cast.js';
import {conv2DBackpropFilterConfig} from './conv2d-backprop-filter.js';
import {isDtrainConv2DBackpropInput, makeConv2DBackpropInputConfig} from './conv2d-backprop-input.js';
import {isDtrainConv2D, makeConv2DConfig} from './conv2d-pointwise.js';
import {depthwiseConv2dNativeBackpropFilterConfig} from './depthwise-backprop-filter.js';
import {depthwiseConv2dNativeBackpropInputConfig} from './depthwise-backprop-input.js';
import {isDtrainDepthwiseConv2dNative, makeDepthwiseConv2dNativeConfig} from './depthwise-forward.js';
import {sharedIdentityConfig} from './identity.js';
import {replaceKernel} from './kernel-utils.js';

let registered = false;
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  replaceKernel(conv2DBackpropFilterConfig);
  replaceKernel(depthwiseConv2dNativeBackpropFilterConfig);
  replaceKernel(depthwiseConv2dNativeBackpropInputConfig);
  const wasmDepthwise = getKernel(DepthwiseConv2dNative, 'wasm') as KernelConfig | undefined;
  if (wasmDepthwise !== undefined && !isDtrainDepthwiseConv2dNative(wasmDepthwise)) replaceKernel(makeDepthwiseConv2dNativeConfig(wasmDepthwise));
  const wasmConv2D = getKernel(Conv2D, 'wasm') as KernelConfig | undefined;
  if (wasmConv2D !== undefined && !isDtrainConv2D(wasmConv2D)) replaceKernel(makeConv2DConfig(wasmConv2D));
  const wasmOwn = getKernel(Conv2DBackpropInput, 'wasm') as KernelConfig | undefined;
  if (wasmOwn !== undefined && !isDtrainConv2DBackpropInput(wasmOwn)) replaceKernel(makeConv2DBackpropInputConfig(wasmOwn));
  replaceKernel(sharedIdentityConfig);
  const wasmCast = getKernel(Cast, 'wasm') as KernelConfig | undefined;
  if (wasmCast !== undefined && !isDtrainCast(wasmCast)) replaceKernel(makeCastConfig(wasmCast));
  registerBatchNormKernels();
}
