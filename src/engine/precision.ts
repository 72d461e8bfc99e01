/**
 * `--precision`: how convolutions sum. 'fast' (the default) keeps the backend's own kernels, which
 * sum in float32; 'exact' registers kernels whose sums are exact before the one rounding to float32:
 * for wasm the float64-summing forward convolutions the cpu backend always uses, for webgpu WGSL
 * double-float sums in all six convolution kernels and in BatchNorm's moments. Exact sums land every ReLU input within ~1e-6
 * of zero on the same side as PyTorch's float64 reference, so `model verify` passes every fixture,
 * at 2.9× (size 0.5) to 4.4× (size 1.5) the wasm step time (docs/fidelity.md, docs/gpu.md).
 * The cpu backend is always exact; tensorflow has only its own kernels.
 */
import {getKernel, type KernelConfig, unregisterKernel} from '@tensorflow/tfjs-core';

import {ExitCode, UserError} from '../cli/errors.js';
import type {BackendName} from './backend.js';
import {float64ConvConfigs} from './cpu/conv-forward.js';
import {replaceKernel} from './wasm/kernel-utils.js';
import {exactBatchMomentsConfig} from './webgpu/exact-batchnorm.js';
import {exactConvConfigs} from './webgpu/exact-conv.js';

export const PRECISIONS = ['fast', 'exact'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** The backends' own kernels that 'exact' replaced (undefined: there was none), so that 'fast' can put them back. */
const own = new Map<string, KernelConfig | undefined>();

function swapKernels(exactConfigs: KernelConfig[], precision: Precision): void {
  for (const exact of exactConfigs) {
    const key = `${exact.backendName}/${exact.kernelName}`;
    if (!own.has(key)) own.set(key, getKernel(exact.kernelName, exact.backendName));
    const wanted = precision === 'exact' ? exact : own.get(key);
    if (wanted !== undefined) replaceKernel(wanted);
    else if (getKernel(exact.kernelName, exact.backendName) !== undefined) unregisterKernel(exact.kernelName, exact.backendName);
  }
}

/** Whether `precision exact` exists on this backend (tensorflow runs only its own kernels). */
export function hasExactKernels(backend: BackendName): boolean {
  return backend !== 'tensorflow';
}

/** Applies `precision` to the (already initialised) backend; returns what it means there, for the start line. */
export function applyPrecision(backend: BackendName, precision: Precision): string {
  if (backend === 'wasm') {
    swapKernels(float64ConvConfigs('wasm'), precision);
    return precision === 'exact' ? 'exact (float64 sums in forward convolutions, ~3–4× slower steps)' : 'fast (float32 sums: XNNPACK and dtrain SIMD kernels)';
  }
  if (backend === 'webgpu') {
    swapKernels([...exactConvConfigs(), exactBatchMomentsConfig], precision);
    return precision === 'exact' ? 'exact (double-float sums in every convolution and in BatchNorm moments, direct WGSL loops: for verification, not speed)' : "fast (webgpu's own kernels)";
  }
  if (backend === 'cpu') return 'exact (the cpu backend always sums convolutions in float64)';
  if (precision === 'exact' && !hasExactKernels(backend)) {
    throw new UserError(`--precision exact needs the wasm, webgpu or cpu backend; ${backend} runs only its own kernels`, {exitCode: ExitCode.usage, suggestion: 'add --backend wasm (or webgpu, cpu), or drop --precision exact'});
  }
  return `fast (${backend}'s own kernels)`;
}
