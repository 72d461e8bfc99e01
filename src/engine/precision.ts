/**
 * `--precision`: how the wasm backend's forward convolutions sum. 'fast' (the default) keeps wasm's
 * own XNNPACK kernels, which sum in float32; 'exact' registers the float64-summing kernels the cpu
 * backend always uses. Exact sums land every ReLU input within ~1e-6 of zero on the same side as
 * PyTorch's float64 reference, so `model verify` passes every fixture, at 2.9× (size 0.5) to 4.4× (size 1.5) the step time
 * (docs/fidelity.md). The cpu backend is always exact; GPU backends have only their own kernels.
 */
import {getKernel, type KernelConfig} from '@tensorflow/tfjs-core';

import {ExitCode, UserError} from '../cli/errors.js';
import type {BackendName} from './backend.js';
import {float64ConvConfigs} from './cpu/conv-forward.js';
import {replaceKernel} from './wasm/kernel-utils.js';

export const PRECISIONS = ['fast', 'exact'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** wasm's own forward convolution kernels, kept so that 'fast' can put them back. */
const wasmOwn = new Map<string, KernelConfig>();

/** Applies `precision` to the (already initialised) backend; returns what it means there, for the start line. */
export function applyPrecision(backend: BackendName, precision: Precision): string {
  if (backend === 'wasm') {
    for (const exact of float64ConvConfigs('wasm')) {
      if (!wasmOwn.has(exact.kernelName)) wasmOwn.set(exact.kernelName, getKernel(exact.kernelName, 'wasm')!);
      replaceKernel(precision === 'exact' ? exact : wasmOwn.get(exact.kernelName)!);
    }
    return precision === 'exact' ? 'exact (float64 sums in forward convolutions, ~3–4× slower steps)' : 'fast (XNNPACK forward convolutions, float32 sums)';
  }
  if (backend === 'cpu') return 'exact (the cpu backend always sums convolutions in float64)';
  if (precision === 'exact') {
    throw new UserError(`--precision exact needs the wasm or cpu backend; ${backend} runs only its own kernels`, {exitCode: ExitCode.usage, suggestion: 'add --backend wasm (or cpu), or drop --precision exact'});
  }
  return `fast (${backend}'s own kernels)`;
}
