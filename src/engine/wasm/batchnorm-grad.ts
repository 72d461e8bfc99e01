/**
 * DtrainBatchNormGrad for the wasm and cpu backends: the training-mode BatchNorm backward in two
 * passes over dy and x̂ instead of a chain of tf ops. With M = N·H·W, per channel c: dβ = Σ dy,
 * dγ = Σ dy·x̂ (float64), then dx = scale/M · (M·dy − dβ − x̂·dγ) where scale = γ·invStd. On wasm
 * both passes run in WebAssembly SIMD where the channels allow: the sums (channel-sums-simd.ts, the
 * same float64 sums in another order) and the dx pass (batchnorm-simd.ts, same bits).
 */
import type {KernelConfig, TensorInfo} from '@tensorflow/tfjs-core';

import {fitsSimdPasses, simdInputGradient} from './batchnorm-simd.js';
import {simdGradSums} from './channel-sums-simd.js';
import {blockRows, cpuAndWasmConfigs, heapF32, requireFloat32, runF32Kernel, type WasmBackend} from './kernel-utils.js';

export const BATCH_NORM_GRAD = 'DtrainBatchNormGrad';

/** dy and xhat viewed as [rows, C]; writes dx (same shape), dgamma and dbeta (length C). */
export function batchNormBackward(dy: Float32Array, xhat: Float32Array, scale: Float32Array,
  dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array): void {
  const {offset, slope} = batchNormSums(dy, xhat, scale, dgamma, dbeta);
  inputGradient(dy, xhat, scale, offset, slope, dx);
}

/**
 * The reductions: writes dβ = Σ dy and dγ = Σ dy·x̂ (summed in float64), and returns the float64
 * factors of dx = scale·dy − offset − slope·x̂ per channel.
 */
export function batchNormSums(dy: Float32Array, xhat: Float32Array, scale: Float32Array, dgamma: Float32Array, dbeta: Float32Array): {offset: Float64Array; slope: Float64Array} {
  const channels = scale.length;
  const rows = dy.length / channels;
  const block = blockRows(channels);
  const sumDy = new Float64Array(channels);
  const sumDyXhat = new Float64Array(channels);
  // Two partial sums of each kind over alternate rows, so that the float64 adds overlap instead of
  // each waiting for the previous one (as in channelMoments).
  const step = 2 * channels;
  for (let r0 = 0; r0 < rows; r0 += block) {
    const end = Math.min(rows, r0 + block) * channels;
    for (let c = 0; c < channels; c++) {
      let s0 = 0;
      let s1 = 0;
      let sx0 = 0;
      let sx1 = 0;
      let i = r0 * channels + c;
      for (; i + channels < end; i += step) {
        const d0 = dy[i];
        const d1 = dy[i + channels];
        s0 += d0;
        s1 += d1;
        sx0 += d0 * xhat[i];
        sx1 += d1 * xhat[i + channels];
      }
      if (i < end) {
        s0 += dy[i];
        sx0 += dy[i] * xhat[i];
      }
      sumDy[c] += s0 + s1;
      sumDyXhat[c] += sx0 + sx1;
    }
  }
  return gradFactors(sumDy, sumDyXhat, scale, rows, dgamma, dbeta);
}

/** From the sums: writes dβ and dγ, returns dx's float64 factors (offset = scale·dβ/M, slope = scale·dγ/M). */
function gradFactors(sumDy: Float64Array, sumDyXhat: Float64Array, scale: Float32Array, rows: number, dgamma: Float32Array, dbeta: Float32Array): {offset: Float64Array; slope: Float64Array} {
  const channels = scale.length;
  // dx = scale·dy − scale·dβ/M − x̂·scale·dγ/M, with the per-channel factors computed once.
  const offset = new Float64Array(channels);
  const slope = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    offset[c] = (scale[c] * sumDy[c]) / rows;
    slope[c] = (scale[c] * sumDyXhat[c]) / rows;
    dbeta[c] = sumDy[c];
    dgamma[c] = sumDyXhat[c];
  }
  return {offset, slope};
}

/** dx = scale·dy − offset − slope·x̂, computed in float64 and rounded once. */
function inputGradient(dy: Float32Array, xhat: Float32Array, scale: Float32Array, offset: Float64Array, slope: Float64Array, dx: Float32Array): void {
  const channels = scale.length;
  const rows = dy.length / channels;
  const block = blockRows(channels);
  // Blocked like the reductions, each channel's factors held in registers: ~1.7× faster than a
  // pixel-major loop that reloads them per element.
  for (let r0 = 0; r0 < rows; r0 += block) {
    const end = Math.min(rows, r0 + block) * channels;
    for (let c = 0; c < channels; c++) {
      const a = scale[c];
      const o = offset[c];
      const b = slope[c];
      for (let i = r0 * channels + c; i < end; i += channels) dx[i] = a * dy[i] - o - b * xhat[i];
    }
  }
}

export const batchNormGradConfigs: KernelConfig[] = cpuAndWasmConfigs(BATCH_NORM_GRAD, (backendName, {inputs, backend}) => {
  const {dy, xhat, scale} = inputs;
  const channels = dy.shape[3];
  if (dy.shape.length !== 4 || String(dy.shape) !== String(xhat.shape) || scale.shape.length !== 1 || scale.shape[0] !== channels) {
    throw new Error(`${BATCH_NORM_GRAD}: need dy and xhat of one NHWC shape and scale [C], got [${dy.shape}], [${xhat.shape}], [${scale.shape}]`);
  }
  if (backendName === 'wasm' && fitsSimdPasses(dy)) {
    requireFloat32(dy, 'dy');
    requireFloat32(xhat, 'xhat');
    requireFloat32(scale, 'scale');
    const wasm = backend as WasmBackend;
    const {sumDy, sumDyXhat} = simdGradSums(wasm, dy, xhat);
    const [dx, dgamma, dbeta] = [dy.shape, [channels], [channels]].map((shape) => wasm.makeOutput(shape, 'float32'));
    // Views after the allocations (they may grow the heap).
    const view = (t: TensorInfo) => heapF32(wasm, t);
    const {offset, slope} = gradFactors(sumDy, sumDyXhat, view(scale), dy.shape[0] * dy.shape[1] * dy.shape[2], view(dgamma), view(dbeta));
    simdInputGradient(wasm, dy, xhat, dx, Float64Array.from(view(scale)), offset, slope);
    return [dx, dgamma, dbeta];
  }
  return runF32Kernel(backendName, backend, [dy, xhat, scale], [dy.shape, [channels], [channels]],
    ([d, xh, s], [dx, dgamma, dbeta]) => batchNormBackward(d, xh, s, dx, dgamma, dbeta));
});
