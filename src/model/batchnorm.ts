import * as tf from '@tensorflow/tfjs-core';

import {batchNormGrad, batchNormTrainForward, runningStats} from '../engine/batchnorm-kernels.js';
import {BN_EPS, BN_MOMENTUM} from './architecture.js';

/** Batch statistics of one training-mode BatchNorm call (biased variance, as used to normalise). */
export interface BatchStats {
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  /** Values per channel that went into the statistics: N·H·W. */
  count: number;
}

/**
 * PyTorch's BatchNorm2d in training mode over NHWC: normalise with the batch mean and the biased
 * variance. The backward is one fused kernel (no Tile, float64 sums where the backend allows).
 * The batch statistics are returned kept (outside any tidy) for the running-stat update; the
 * caller disposes them.
 */
export function batchNormTrain(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D): {y: tf.Tensor4D; stats: BatchStats} {
  let stats: BatchStats | undefined;
  const op = tf.customGrad((xIn, gIn, bIn, save) => {
    const input = xIn as tf.Tensor4D;
    const [y, xhat, scale, mean, variance] = batchNormTrainForward(input, gIn as tf.Tensor1D, bIn as tf.Tensor1D, BN_EPS);
    (save as tf.GradSaveFunc)([xhat, scale]);
    stats = {mean: tf.keep(mean), variance: tf.keep(variance), count: input.shape[0] * input.shape[1] * input.shape[2]};
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => batchNormGrad(dy as tf.Tensor4D, saved[0] as tf.Tensor4D, saved[1] as tf.Tensor1D),
    };
  });
  const y = op(x, gamma, beta) as tf.Tensor4D;
  return {y, stats: stats!};
}

/** Eval mode: running statistics, folded into one scale and shift per channel. */
export function batchNormEval(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, runningMean: tf.Tensor1D, runningVar: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => {
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(runningVar, BN_EPS)));
    const shift = tf.sub(beta, tf.mul(runningMean, scale));
    return tf.add(tf.mul(x, scale), shift) as tf.Tensor4D;
  });
}

/**
 * PyTorch's running-stat update: momentum 0.1, and the UNBIASED variance (×M/(M−1)) for the
 * running estimate although the biased one normalised the batch.
 */
export function updateRunningStats(runningMean: tf.Variable, runningVar: tf.Variable, stats: BatchStats): void {
  const [mean, variance] = runningStats(runningMean as tf.Tensor1D, runningVar as tf.Tensor1D, stats.mean, stats.variance, stats.count, BN_MOMENTUM);
  runningMean.assign(mean);
  runningVar.assign(variance);
  tf.dispose([mean, variance]);
}
