/**
 * DtrainBatchMoments for the wasm and cpu backends: per-channel mean and biased variance of an
 * NHWC tensor over N·H·W, two passes with float64 accumulators (no cancellation from E[x²]−E[x]²),
 * in WebAssembly SIMD on wasm where the channels allow (channel-sums-simd.ts), else in JS.
 */
import type {KernelConfig, TensorInfo} from '@tensorflow/tfjs-core';

import {fitsSimdPasses} from './batchnorm-simd.js';
import {simdMoments} from './channel-sums-simd.js';
import {blockRows, cpuAndWasmConfigs, heapF32, requireFloat32, runF32Kernel, type WasmBackend} from './kernel-utils.js';

export const BATCH_MOMENTS = 'DtrainBatchMoments';

/** mean and variance (length C) of x viewed as [rows, C]. */
export function channelMoments(x: Float32Array, channels: number, mean: Float32Array, variance: Float32Array): void {
  const rows = x.length / channels;
  const block = blockRows(channels);
  const mu = new Float64Array(channels);
  const sq = new Float64Array(channels);
  const step = 2 * channels;
  // Two partial sums per channel, over alternate rows: a single running sum waits on the latency
  // of each float64 add (~1.15 ns per element and pass); two independent ones overlap.
  for (let pass = 0; pass < 2; pass++) {
    for (let r0 = 0; r0 < rows; r0 += block) {
      const end = Math.min(rows, r0 + block) * channels;
      for (let c = 0; c < channels; c++) {
        let s0 = 0;
        let s1 = 0;
        let i = r0 * channels + c;
        if (pass === 0) {
          for (; i + channels < end; i += step) {
            s0 += x[i];
            s1 += x[i + channels];
          }
          if (i < end) s0 += x[i];
          mu[c] += s0 + s1;
        } else {
          const m = mu[c];
          for (; i + channels < end; i += step) {
            const d0 = x[i] - m;
            const d1 = x[i + channels] - m;
            s0 += d0 * d0;
            s1 += d1 * d1;
          }
          if (i < end) s0 += (x[i] - m) * (x[i] - m);
          sq[c] += s0 + s1;
        }
      }
    }
    if (pass === 0) for (let c = 0; c < channels; c++) mu[c] /= rows;
  }
  for (let c = 0; c < channels; c++) {
    mean[c] = mu[c];
    variance[c] = sq[c] / rows;
  }
}

/** The same moments from WebAssembly SIMD sums (channel-sums-simd.ts), for x in the wasm heap. */
function simdMomentTensors(backend: WasmBackend, x: TensorInfo): TensorInfo[] {
  requireFloat32(x, 'x');
  const channels = x.shape[3];
  const moments = simdMoments(backend, x);
  const [mean, variance] = [backend.makeOutput([channels], 'float32'), backend.makeOutput([channels], 'float32')];
  heapF32(backend, mean).set(moments.mean);
  heapF32(backend, variance).set(moments.variance);
  return [mean, variance];
}

export const batchMomentsConfigs: KernelConfig[] = cpuAndWasmConfigs(BATCH_MOMENTS, (backendName, {inputs, backend}) => {
  const {x} = inputs;
  if (x.shape.length !== 4) throw new Error(`${BATCH_MOMENTS}: x must be rank 4 (NHWC), got shape [${x.shape}]`);
  if (backendName === 'wasm' && fitsSimdPasses(x)) return simdMomentTensors(backend as WasmBackend, x);
  const channels = x.shape[3];
  return runF32Kernel(backendName, backend, [x], [[channels], [channels]], ([xs], [mean, variance]) => channelMoments(xs, channels, mean, variance));
});
