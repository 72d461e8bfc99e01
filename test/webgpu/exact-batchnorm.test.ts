/**
 * webgpu's --precision exact batch moments (src/engine/webgpu/exact-batchnorm.ts) against float64
 * two-pass moments, on data whose mean dwarfs its spread (where float32 sums lose the variance).
 */
import assert from 'node:assert/strict';
import {after, test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {batchMoments} from '../../src/engine/batchnorm-kernels.js';
import {initBackend} from '../../src/engine/backend.js';
import {applyPrecision} from '../../src/engine/precision.js';
import {releaseWebGpu} from '../../src/engine/webgpu.js';
import {normalArray} from '../engine/compare.js';
import {requireAdapter, skip} from './adapter.js';

after(() => releaseWebGpu());

test('webgpu exact batch moments: mean and variance are the float32 nearest the float64 two-pass values', {skip, timeout: 60_000}, async () => {
  requireAdapter();
  await initBackend('webgpu');
  const shape: [number, number, number, number] = [8, 16, 16, 24];
  const channels = shape[3];
  const values = normalArray(shape.reduce((a, b) => a * b), 5, 3, 1e-3);
  const rows = values.length / channels;
  const mean = new Float64Array(channels);
  const variance = new Float64Array(channels);
  for (let i = 0; i < values.length; i++) mean[i % channels] += values[i] / rows;
  for (let i = 0; i < values.length; i++) variance[i % channels] += (values[i] - mean[i % channels]) ** 2 / rows;
  const moments = async (precision: 'fast' | 'exact') => {
    applyPrecision('webgpu', precision);
    const x = tf.tensor4d(values, shape);
    const [m, v] = batchMoments(x);
    const got = [await m.data(), await v.data()];
    tf.dispose([x, m, v]);
    return got;
  };
  const before = tf.memory().numTensors;
  try {
    const fast = await moments('fast');
    const exact = await moments('exact');
    const relErr = (got: ArrayLike<number>, want: Float64Array) => Math.max(...Array.from(want, (w, c) => Math.abs(got[c] - w) / Math.abs(w)));
    console.log(`variance, worst relative error: fast ${relErr(fast[1], variance).toExponential(2)}, exact ${relErr(exact[1], variance).toExponential(2)}`);
    assert.deepEqual(Array.from(exact[0]), Array.from(mean, Math.fround), 'mean');
    // Two float64 passes and two double-float ones may round a variance differently by at most an ulp.
    for (let c = 0; c < channels; c++) assert.ok(Math.abs(exact[1][c] - variance[c]) <= Math.abs(variance[c]) * 2 ** -23, `variance[${c}] ${exact[1][c]} vs ${variance[c]}`);
  } finally {
    applyPrecision('webgpu', 'fast');
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});
