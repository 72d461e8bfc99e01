/**
 * The head's globalAvgPool (src/model/pooling.ts) on wasm and cpu: value and gradient bit for bit
 * those of tf.avgPool + reshape, whose gradient is the backend's AvgPoolGrad; no tensors kept.
 */
import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {globalAvgPool} from '../../src/model/pooling.js';
import {normalArray} from './compare.js';

const SHAPE: [number, number, number, number] = [3, 4, 4, 5];

for (const backend of ['cpu', 'wasm']) {
  test(`${backend}: globalAvgPool equals avgPool over the whole map, forward and gradient`, async () => {
    await tf.setBackend(backend);
    const x = tf.tensor4d(normalArray(tf.util.sizeFromShape(SHAPE), 1), SHAPE);
    const weights = tf.tensor2d(normalArray(SHAPE[0] * SHAPE[3], 2), [SHAPE[0], SHAPE[3]]);
    const before = tf.memory().numTensors;
    const viaAvgPool = (input: tf.Tensor4D) => tf.tidy(() => tf.reshape(tf.avgPool(input, 4, 4, 'valid'), [SHAPE[0], SHAPE[3]]) as tf.Tensor2D);
    const [got, want] = [globalAvgPool(x), viaAvgPool(x)];
    assert.deepEqual(got.shape, [SHAPE[0], SHAPE[3]]);
    assert.deepEqual(await got.data(), await want.data());
    const loss = (pool: (input: tf.Tensor4D) => tf.Tensor2D) => tf.grad((input: tf.Tensor) => tf.sum(tf.mul(pool(input as tf.Tensor4D), weights)));
    const [gotGrad, wantGrad] = [loss(globalAvgPool)(x), loss(viaAvgPool)(x)];
    assert.deepEqual(await gotGrad.data(), await wantGrad.data());
    assert.ok((await gotGrad.data()).some((v) => v !== 0));
    tf.dispose([got, want, gotGrad, wantGrad]);
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, weights]);
  });
}
