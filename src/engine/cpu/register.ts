/** Registers dtrain's float64-accumulating forward convolutions for the cpu backend. Idempotent. */
import '@tensorflow/tfjs-backend-cpu';

import {replaceKernel} from '../wasm/kernel-utils.js';
import {float64ConvConfigs} from './conv-forward.js';

let registered = false;
export function registerCpuPrecisionKernels(): void {
  if (registered) return;
  registered = true;
  for (const config of float64ConvConfigs('cpu')) replaceKernel(config);
}
