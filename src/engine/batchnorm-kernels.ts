/**
 * Fused training-mode BatchNorm pieces, as custom kernels on the wasm and cpu backends (float64
 * accumulation, two passes over the data each) and as tf ops on any other backend (webgpu,
 * tensorflow). Meant for tf.customGrad forward/gradient functions: every call returns fresh
 * tensors and keeps nothing else.
 */
import * as tf from '@tensorflow/tfjs-core';

import {BATCH_MOMENTS, batchMomentsConfigs} from './wasm/batch-moments.js';
import {BATCH_NORM_FORWARD, BATCH_NORM_TRAIN_FORWARD, batchNormForwardConfig, batchNormTrainForwardConfig, fitsSimdPasses} from './wasm/batchnorm-simd.js';
import {BATCH_NORM_GRAD, batchNormGradConfigs} from './wasm/batchnorm-grad.js';
import {RUNNING_STATS, runningStatsConfigs} from './wasm/running-stats.js';

export {BATCH_MOMENTS, BATCH_NORM_FORWARD, BATCH_NORM_GRAD, BATCH_NORM_TRAIN_FORWARD, RUNNING_STATS};

/** Registers the kernels (three for wasm and cpu, the one-pass and the whole training forward for wasm); idempotent (runs at import of this module). */
export function registerBatchNormKernels(): void {
  for (const config of [...batchMomentsConfigs, ...batchNormGradConfigs, ...runningStatsConfigs, batchNormForwardConfig, batchNormTrainForwardConfig]) {
    if (tf.getKernel(config.kernelName, config.backendName) === undefined) tf.registerKernel(config);
  }
}
registerBatchNormKernels();

function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** Per-channel mean and biased variance over N, H, W of an NHWC float32 tensor. */
export function batchMoments(x: tf.Tensor4D): [mean: tf.Tensor1D, variance: tf.Tensor1D] {
  if (hasKernel(BATCH_MOMENTS)) {
    return tf.engine().runKernel(BATCH_MOMENTS, {x}, {}) as unknown as [tf.Tensor1D, tf.Tensor1D];
  }
  return batchMomentsOps(x);
}

/** batchMoments with tf ops only (the path of backends without the kernel). */
export function batchMomentsOps(x: tf.Tensor4D): [mean: tf.Tensor1D, variance: tf.Tensor1D] {
  return tf.tidy(() => {
    const mean = tf.mean(x, [0, 1, 2]) as tf.Tensor1D;
    const variance = tf.mean(tf.square(tf.sub(x, mean)), [0, 1, 2]) as tf.Tensor1D;
    return [mean, variance];
  });
}

/**
 * Training-mode BatchNorm's full-size outputs: y = x·scale + shift (PyTorch's rounding order) and
 * x̂ = (x − mean)·invStd for the backward. One pass on wasm (DtrainBatchNormForward), the same
 * four float32 ops as tf ops elsewhere; the same bits either way.
 */
export function batchNormForward(x: tf.Tensor4D, scale: tf.Tensor1D, shift: tf.Tensor1D, mean: tf.Tensor1D, invStd: tf.Tensor1D): [y: tf.Tensor4D, xhat: tf.Tensor4D] {
  if (hasKernel(BATCH_NORM_FORWARD) && fitsSimdPasses(x)) {
    return tf.engine().runKernel(BATCH_NORM_FORWARD, {x, scale, shift, mean, invStd}, {}) as unknown as [tf.Tensor4D, tf.Tensor4D];
  }
  return batchNormForwardOps(x, scale, shift, mean, invStd);
}

/**
 * Training-mode BatchNorm's forward from x, γ and β: [y, x̂, scale = γ·invStd, batch mean, biased
 * batch variance], with invStd = rsqrt(variance + eps) and y = x·scale + (β − mean·scale). One
 * kernel on wasm (DtrainBatchNormTrainForward); elsewhere the moments, four tf ops and
 * batchNormForward. The same bits either way.
 */
export function batchNormTrainForward(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): [y: tf.Tensor4D, xhat: tf.Tensor4D, scale: tf.Tensor1D, mean: tf.Tensor1D, variance: tf.Tensor1D] {
  if (hasKernel(BATCH_NORM_TRAIN_FORWARD) && fitsSimdPasses(x)) {
    return tf.engine().runKernel(BATCH_NORM_TRAIN_FORWARD, {x, gamma, beta}, {epsilon}) as unknown as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
  }
  return batchNormTrainForwardOps(x, gamma, beta, epsilon);
}

/** batchNormTrainForward without the one-kernel path. */
export function batchNormTrainForwardOps(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): [y: tf.Tensor4D, xhat: tf.Tensor4D, scale: tf.Tensor1D, mean: tf.Tensor1D, variance: tf.Tensor1D] {
  const [mean, variance] = batchMoments(x);
  const [y, xhat, scale] = tf.tidy(() => {
    const invStd = tf.rsqrt(tf.add(variance, epsilon)) as tf.Tensor1D;
    const scale = tf.mul(gamma, invStd) as tf.Tensor1D;
    // PyTorch's order (y = x·α + (β − mean·α)) rather than (x̂·γ + β): same maths, but rounding
    // like the reference keeps ReLU inputs that sit within float32 noise of zero on its side.
    const shift = tf.sub(beta, tf.mul(mean, scale)) as tf.Tensor1D;
    return [...batchNormForward(x, scale, shift, mean, invStd), scale] as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D];
  });
  return [y, xhat, scale, mean, variance];
}

/** batchNormForward with tf ops only. */
export function batchNormForwardOps(x: tf.Tensor4D, scale: tf.Tensor1D, shift: tf.Tensor1D, mean: tf.Tensor1D, invStd: tf.Tensor1D): [y: tf.Tensor4D, xhat: tf.Tensor4D] {
  return tf.tidy(() => [tf.add(tf.mul(x, scale), shift) as tf.Tensor4D, tf.mul(tf.sub(x, mean), invStd) as tf.Tensor4D]);
}

/**
 * Backward of training-mode BatchNorm given the normalised input x̂ and scale = γ·invStd, with
 * M = N·H·W: dβ = Σ dy, dγ = Σ dy·x̂, dx = scale/M · (M·dy − dβ − x̂·dγ).
 */
export function batchNormGrad(dy: tf.Tensor4D, xhat: tf.Tensor4D, scale: tf.Tensor1D): [dx: tf.Tensor4D, dgamma: tf.Tensor1D, dbeta: tf.Tensor1D] {
  if (hasKernel(BATCH_NORM_GRAD)) {
    return tf.engine().runKernel(BATCH_NORM_GRAD, {dy, xhat, scale}, {}) as unknown as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
  }
  return batchNormGradOps(dy, xhat, scale);
}

/** batchNormGrad with tf ops only (broadcasting, no Tile). */
export function batchNormGradOps(dy: tf.Tensor4D, xhat: tf.Tensor4D, scale: tf.Tensor1D): [dx: tf.Tensor4D, dgamma: tf.Tensor1D, dbeta: tf.Tensor1D] {
  return tf.tidy(() => {
    const [n, h, w] = dy.shape;
    const count = n * h * w;
    const dbeta = tf.sum(dy, [0, 1, 2]) as tf.Tensor1D;
    const dgamma = tf.sum(tf.mul(dy, xhat), [0, 1, 2]) as tf.Tensor1D;
    const centred = tf.sub(tf.sub(tf.mul(dy, count), dbeta), tf.mul(xhat, dgamma));
    const dx = tf.mul(centred, tf.div(scale, count)) as tf.Tensor4D;
    return [dx, dgamma, dbeta];
  });
}

/**
 * PyTorch's running-stat update (momentum m; the unbiased variance, ×M/(M−1) for M values per
 * channel): [mean·(1 − m) + batchMean·m, var·(1 − m) + batchVar·M/(M−1)·m], rounded like these tf ops.
 */
export function runningStats(runningMean: tf.Tensor1D, runningVar: tf.Tensor1D, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number,
  momentum: number): [mean: tf.Tensor1D, variance: tf.Tensor1D] {
  const unbias = count / Math.max(count - 1, 1);
  if (hasKernel(RUNNING_STATS)) {
    return tf.engine().runKernel(RUNNING_STATS, {runningMean, runningVar, mean, variance}, {unbias, momentum}) as unknown as [tf.Tensor1D, tf.Tensor1D];
  }
  return runningStatsOps(runningMean, runningVar, mean, variance, count, momentum);
}

/** runningStats with tf ops only. */
export function runningStatsOps(runningMean: tf.Tensor1D, runningVar: tf.Tensor1D, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number,
  momentum: number): [mean: tf.Tensor1D, variance: tf.Tensor1D] {
  return tf.tidy(() => {
    const unbiased = tf.mul(variance, count / Math.max(count - 1, 1));
    return [tf.add(tf.mul(runningMean, 1 - momentum), tf.mul(mean, momentum)), tf.add(tf.mul(runningVar, 1 - momentum), tf.mul(unbiased, momentum))];
  });
}
