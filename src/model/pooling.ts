/**
 * F.avg_pool2d(x, k) over a whole k×k feature map (the head's pooling), with a copy for its
 * gradient: wasm's AvgPoolGrad took ~2 % of a size-0.5 training step for this one call. Both
 * scale by 1/(k·k), a power of two for the model's 4×4 map, so the gradient is bit for bit the same.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Mean over H and W of an NHWC tensor as [N, C], through avgPool. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  const [n, h, w, c] = x.shape;
  const op = tf.customGrad((input) => ({
    value: tf.reshape(tf.avgPool(input as tf.Tensor4D, [h, w], [h, w], 'valid'), [n, c]),
    // Every pixel gets dy/(h·w): h·w copies joined by Concat (wasm's Tile and broadcasting
    // Multiply were 30× and 4× slower than that here).
    gradFunc: (dy: tf.Tensor) => {
      const share = tf.reshape(tf.mul(dy, 1 / (h * w)), [n, 1, c]);
      return tf.reshape(tf.concat(new Array<tf.Tensor>(h * w).fill(share), 1), [n, h, w, c]);
    },
  }));
  return op(x) as tf.Tensor2D;
}
