/**
 * shuffleSplit (ShuffleNetV2's channel shuffle fused with the next split) on wasm and cpu: its copy
 * kernels against the tf-op path (split ∘ channelShuffle ∘ concat), forward and gradient,
 * bit for bit, and that neither keeps tensors.
 */
import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {SHUFFLE_JOIN, SHUFFLE_SPLIT} from '../../src/engine/wasm/channel-shuffle.js';
import {shuffleSplit, shuffleSplitOps} from '../../src/model/channel-shuffle.js';
import {normalArray} from './compare.js';

const SHAPE: [number, number, number, number] = [2, 3, 5, 12];
/** Halves of 24 channels: every part takes a multiple of 4 from each (wasm's SIMD copies, 2–6 vectors). */
const WIDE: [number, number, number, number] = [2, 4, 3, 24];


/** A loss with distinct weights per element and part, so that the gradient tells them apart. */
function weightedSum(outs: tf.Tensor4D[]): tf.Scalar {
  return tf.addN(outs.map((o, p) => tf.sum(tf.mul(o, tf.tensor4d(normalArray(o.size, 10 + p), o.shape))))) as tf.Scalar;
}

for (const backend of ['cpu', 'wasm']) {
  for (const [shape, parts] of [[SHAPE, 1], [SHAPE, 2], [SHAPE, 3], [WIDE, 1], [WIDE, 2], [WIDE, 3]] as const) {
    test(`${backend}: shuffleSplit of [${shape}] halves into ${parts} part(s) equals split(channelShuffle(concat)), forward and gradient`, async () => {
      await tf.setBackend(backend);
      assert.ok(tf.getKernel(SHUFFLE_SPLIT, backend) !== undefined && tf.getKernel(SHUFFLE_JOIN, backend) !== undefined);
      const a = tf.tensor4d(normalArray(tf.util.sizeFromShape(shape), 1), shape);
      const b = tf.tensor4d(normalArray(tf.util.sizeFromShape(shape), 2), shape);
      const before = tf.memory().numTensors;
      const got = shuffleSplit(a, b, parts);
      const want = shuffleSplitOps(a, b, parts);
      assert.equal(got.length, parts);
      for (let p = 0; p < parts; p++) {
        assert.deepEqual(got[p].shape, want[p].shape);
        assert.deepEqual(await got[p].data(), await want[p].data());
      }
      tf.dispose([...got, ...want]);
      assert.equal(tf.memory().numTensors, before);
      const gotGrads = tf.grads((x: tf.Tensor, y: tf.Tensor) => weightedSum(shuffleSplit(x as tf.Tensor4D, y as tf.Tensor4D, parts)))([a, b]);
      const wantGrads = tf.grads((x: tf.Tensor, y: tf.Tensor) => weightedSum(shuffleSplitOps(x as tf.Tensor4D, y as tf.Tensor4D, parts)))([a, b]);
      for (let i = 0; i < 2; i++) assert.deepEqual(await gotGrads[i].data(), await wantGrads[i].data());
      tf.dispose([...gotGrads, ...wantGrads]);
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([a, b]);
    });
  }

  test(`${backend}: an unused part gets a zero gradient`, async () => {
    await tf.setBackend(backend);
    const a = tf.tensor4d(normalArray(tf.util.sizeFromShape(SHAPE), 3), SHAPE);
    const b = tf.tensor4d(normalArray(tf.util.sizeFromShape(SHAPE), 4), SHAPE);
    const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(shuffleSplit(x as tf.Tensor4D, y as tf.Tensor4D, 2)[1]))([a, b]);
    // Part 1 holds the upper half of each half's channels: ones there, zeros below.
    const expected = Array.from({length: a.size}, (_, i) => (i % 12 >= 6 ? 1 : 0));
    assert.deepEqual(Array.from(await da.data()), expected);
    assert.deepEqual(Array.from(await db.data()), expected);
    tf.dispose([a, b, da, db]);
  });
}

test('shuffleSplit falls back to tf ops when the parts would have an odd width', async () => {
  await tf.setBackend('cpu');
  const a = tf.tensor4d(normalArray(2 * 3, 5), [1, 1, 2, 3]);
  const b = tf.tensor4d(normalArray(2 * 3, 6), [1, 1, 2, 3]);
  const got = shuffleSplit(a, b, 2); // 6 channels into parts of 3
  const want = shuffleSplitOps(a, b, 2);
  for (let p = 0; p < 2; p++) assert.deepEqual(await got[p].data(), await want[p].data());
  tf.dispose([a, b, ...got, ...want]);
});
