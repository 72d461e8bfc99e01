/** Registers dtrain's float64-accumulating forward convolutions for the cpu backend. Idempotent. */
import '@tensorflow/tfjs-backend-cpu';

import {replaceKernel} from '../wasm/kernel-utils.js';
import {cpuConv2DConfig, cpuDepthwiseConv2dNativeConfig} from './conv-forward.js';

let registered = false;
export function registerCpuPrecisionKernels(): void {
  if (registered) return;
  registered = true;
  replaceKernel(cpuConv2DConfig);
  replaceKernel(cpuDepthwiseConv2dNativeConfig);
}
