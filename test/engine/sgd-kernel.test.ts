/**
 * DtrainSgdStep (one kernel per parameter's SGD update) against the six tf ops it replaces: the same
 * bits on cpu and wasm over several steps, with and without momentum and weight decay.
 */
import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {initBackend} from '../../src/engine/backend.js';
import {SGD_STEP, sgdUpdate, sgdUpdateOps, type SgdStepAttrs} from '../../src/engine/sgd-kernel.js';
import {normalArray} from './compare.js';

const SETTINGS: SgdStepAttrs[] = [
  {lr: 0.1, momentum: 0.9, weightDecay: 5e-4}, // the seed's
  {lr: 0.037, momentum: 0, weightDecay: 1e-3},
  {lr: 0.5, momentum: 0.5, weightDecay: 0},
];

for (const backend of ['cpu', 'wasm'] as const) {
  test(`${backend}: the SGD kernel gives the tf ops' parameters and momentum bit for bit, step after step`, async () => {
    await initBackend(backend);
    assert.ok(tf.getKernel(SGD_STEP, backend) !== undefined, 'the kernel is registered');
    for (const [k, attrs] of SETTINGS.entries()) {
      // 1,003 values: the kernel has no vector loop, but an odd length keeps it honest.
      let [pKernel, pOps]: tf.Tensor[] = [tf.tensor1d(normalArray(1003, 10 * k, 0, 2)), tf.tensor1d(normalArray(1003, 10 * k, 0, 2))];
      let [bufKernel, bufOps]: Array<tf.Tensor | undefined> = [undefined, undefined];
      for (let step = 0; step < 3; step++) {
        const g = tf.tensor1d(normalArray(1003, 10 * k + step + 1, 0, 0.1));
        const before = tf.memory().numTensors;
        const [nextKernel, newBufKernel] = sgdUpdate(pKernel, g, bufKernel, attrs);
        assert.equal(tf.memory().numTensors, before + 2, 'two outputs, nothing else');
        const [nextOps, newBufOps] = sgdUpdateOps(pOps, g, bufOps, attrs);
        assert.deepEqual(await nextKernel.data(), await nextOps.data(), `parameters, settings ${k}, step ${step}`);
        assert.deepEqual(await newBufKernel.data(), await newBufOps.data(), `momentum, settings ${k}, step ${step}`);
        tf.dispose([pKernel, pOps, g, bufKernel, bufOps].filter((t): t is tf.Tensor => t !== undefined));
        [pKernel, pOps, bufKernel, bufOps] = [nextKernel, nextOps, newBufKernel, newBufOps];
      }
      // A moved parameter: the update did something.
      assert.notDeepEqual(await pKernel.data(), Float32Array.from(normalArray(1003, 10 * k, 0, 2)));
      tf.dispose([pKernel, pOps, bufKernel!, bufOps!]);
    }
  });
}

test('the SGD kernel refuses mismatched shapes', async () => {
  await initBackend('cpu');
  const [p, g] = [tf.zeros([3]), tf.zeros([4])];
  assert.throws(() => sgdUpdate(p, g, undefined, SETTINGS[0]), /param, grad and momentum must have one shape/);
  tf.dispose([p, g]);
});
