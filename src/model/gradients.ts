import * as tf from '@tensorflow/tfjs-core';

import '../engine/gradients.js';

import type {BatchStats} from './batchnorm.js';
import {crossEntropy} from './loss.js';
import type {ShuffleNetV2} from './shufflenetv2.js';

export interface LossAndGradients {
  loss: tf.Scalar;
  logits: tf.Tensor2D;
  /** Gradient per trainable parameter name (tfjs layout). */
  grads: Map<string, tf.Tensor>;
  /** BN batch statistics of this forward, for model.applyBatchStats. */
  stats: Map<string, BatchStats>;
}

/** One training-mode forward and backward: mean cross-entropy and its gradients. Caller disposes. */
export function lossAndGradients(model: ShuffleNetV2, x: tf.Tensor4D, labels: tf.Tensor1D): LossAndGradients {
  let logits: tf.Tensor2D | undefined;
  let stats: Map<string, BatchStats> | undefined;
  const {value, grads} = tf.variableGrads(() => {
    const out = model.forward(x, true);
    logits = tf.keep(out.logits);
    stats = out.stats;
    return crossEntropy(out.logits, labels);
  }, model.trainableVariables());
  const byName = new Map<string, tf.Tensor>();
  for (const [name, variable] of model.params) byName.set(name, grads[variable.name]);
  return {loss: value, logits: logits!, grads: byName, stats: stats!};
}

export function disposeGradients(result: LossAndGradients): void {
  tf.dispose([result.loss, result.logits, ...result.grads.values()]);
}
