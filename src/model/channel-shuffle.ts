/**
 * ShuffleNetV2's channel shuffle fused with the split that follows it: shuffleSplit(a, b, parts)
 * equals tf.split(channelShuffle(tf.concat([a, b], 3)), parts, 3). On wasm and cpu it is one
 * copy kernel each way (src/engine/wasm/channel-shuffle.ts), elsewhere those tf ops
 * (shuffleSplitOps).
 */
import * as tf from '@tensorflow/tfjs-core';

import {canShuffleSplit, channelShuffleConfigs, SHUFFLE_JOIN, SHUFFLE_SPLIT} from '../engine/wasm/channel-shuffle.js';

for (const config of channelShuffleConfigs) {
  if (tf.getKernel(config.kernelName, config.backendName) === undefined) tf.registerKernel(config);
}

// The gradient of the split copy is the join copy: each part's gradient goes back to its channels.
tf.registerGradient({
  kernelName: SHUFFLE_SPLIT,
  gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
    // The engine passes a lone output's gradient bare, and zeros for an unused output's.
    const parts = Object.fromEntries((Array.isArray(dy) ? dy : [dy]).map((d, p) => [`p${p}`, d]));
    const [da, db] = tf.engine().runKernel(SHUFFLE_JOIN, parts, {}) as unknown as tf.Tensor[];
    return {a: () => da, b: () => db};
  },
});

/** ShuffleBlock(groups=2): NCHW view(N,2,C/2,H,W).permute(0,2,1,3,4), written for NHWC. */
export function channelShuffle(x: tf.Tensor4D, groups = 2): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [n, h, w, groups, c / groups]), [0, 1, 2, 4, 3]), [n, h, w, c]);
}

/** channelShuffle(concat([a, b])) cut along channels into `parts` equal tensors. */
export function shuffleSplit(a: tf.Tensor4D, b: tf.Tensor4D, parts: number): tf.Tensor4D[] {
  if (tf.getKernel(SHUFFLE_SPLIT, tf.getBackend()) !== undefined && canShuffleSplit(a.shape[3], parts)) {
    return tf.engine().runKernel(SHUFFLE_SPLIT, {a, b}, {parts}) as unknown as tf.Tensor4D[];
  }
  return shuffleSplitOps(a, b, parts);
}

/** shuffleSplit with tf ops only (the path of backends without the kernels). */
export function shuffleSplitOps(a: tf.Tensor4D, b: tf.Tensor4D, parts: number): tf.Tensor4D[] {
  return tf.tidy(() => {
    const shuffled = channelShuffle(tf.concat([a, b], 3));
    // Not split into one part: tfjs's SplitV gradient fails for a single output.
    return parts === 1 ? [shuffled] : tf.split(shuffled, parts, 3);
  });
}
