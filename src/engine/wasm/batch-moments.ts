/**
 * DtrainBatchMoments for the wasm and cpu backends: per-channel mean and biased variance of an
 * NHWC tensor over N·H·W, two passes with float64 accumulators (no cancellation from E[x²]−E[x]²).
 */
import type {KernelConfig} from '@tensorflow/tfjs-core';

import {cpuAndWasmConfigs, runF32Kernel} from './kernel-utils.js';

export const BATCH_MOMENTS = 'DtrainBatchMoments';

/** mean and variance (length C) of x viewed as [rows, C]. */
export function channelMoments(x: Float32Array, channels: number, mean: Float32Array, variance: Float32Array): void {
  const rows = x.length / channels;
  const sum = new Float64Array(channels);
  for (let i = 0; i < x.length; i += channels) {
    for (let c = 0; c < channels; c++) sum[c] += x[i + c];
  }
  for (let c = 0; c < channels; c++) sum[c] /= rows;
  const sq = new Float64Array(channels);
  for (let i = 0; i < x.length; i += channels) {
    for (let c = 0; c < channels; c++) {
      const d = x[i + c] - sum[c];
      sq[c] += d * d;
    }
  }
  for (let c = 0; c < channels; c++) {
    mean[c] = sum[c];
    variance[c] = sq[c] / rows;
  }
}

export const batchMomentsConfigs: KernelConfig[] = cpuAndWasmConfigs(BATCH_MOMENTS, (backendName, {inputs, backend}) => {
  const {x} = inputs;
  if (x.shape.length !== 4) throw new Error(`${BATCH_MOMENTS}: x must be rank 4 (NHWC), got shape [${x.shape}]`);
  const channels = x.shape[3];
  return runF32Kernel(backendName, backend, [x], [[channels], [channels]], ([xs], [mean, variance]) => channelMoments(xs, channels, mean, variance));
});
