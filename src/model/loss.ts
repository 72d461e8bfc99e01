import * as tf from '@tensorflow/tfjs-core';

import {NUM_CLASSES} from './architecture.js';

/** nn.CrossEntropyLoss() (mean over the batch) from logits and integer labels. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const onehot = tf.oneHot(labels, NUM_CLASSES);
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
}
