import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {initBackend} from '../../src/engine/backend.js';
import {CosineLR, createScheduler, MultiStepLR, ReduceLROnPlateau} from '../../src/optim/schedulers.js';
import {SGD} from '../../src/optim/sgd.js';

test('SGD follows torch.optim.SGD: buf = g + wd·p first, then momentum·buf + d; p -= lr·buf', async () => {
  await initBackend('cpu');
  const p = tf.variable(tf.tensor1d([1, -2]));
  const params = new Map([['w', p]]);
  const opt = new SGD({lr: 0.1, momentum: 0.9, weightDecay: 0.01});
  const g1 = tf.tensor1d([0.5, 0.25]);
  opt.step(params, new Map([['w', g1]]));
  // d1 = g + 0.01·p = [0.51, 0.23]; p1 = p − 0.1·d1
  const p1 = [1 - 0.1 * 0.51, -2 - 0.1 * 0.23];
  const got1 = await p.data();
  p1.forEach((v, i) => assert.ok(Math.abs(got1[i] - v) < 1e-6));
  opt.step(params, new Map([['w', g1]]));
  const d2 = [0.5 + 0.01 * p1[0], 0.25 + 0.01 * p1[1]];
  const buf2 = [0.9 * 0.51 + d2[0], 0.9 * 0.23 + d2[1]];
  const got2 = await p.data();
  [p1[0] - 0.1 * buf2[0], p1[1] - 0.1 * buf2[1]].forEach((v, i) => assert.ok(Math.abs(got2[i] - v) < 1e-6, `${got2[i]} vs ${v}`));
  const before = tf.memory().numTensors;
  opt.step(params, new Map([['w', g1]]));
  assert.equal(tf.memory().numTensors, before, 'a step keeps the tensor count');
  opt.dispose();
  tf.dispose([p, g1]);
});

test('ReduceLROnPlateau (factor 0.94, patience 1, min 1e-6) cuts the LR after two epochs without improvement', () => {
  const s = new ReduceLROnPlateau(0.1);
  assert.equal(s.step(0, 2.0), 0.1);
  assert.equal(s.step(1, 1.5), 0.1);
  assert.equal(s.step(2, 1.5), 0.1); // one bad epoch: within patience
  assert.ok(Math.abs(s.step(3, 1.6) - 0.094) < 1e-12); // second bad epoch: cut
  assert.ok(Math.abs(s.step(4, 1.6) - 0.094) < 1e-12); // counter was reset
  const floor = new ReduceLROnPlateau(1.02e-6);
  floor.step(0, 1);
  floor.step(1, 1);
  assert.equal(floor.step(2, 1), 1e-6);
});

test('multistep, cosine and constant schedules', () => {
  const m = new MultiStepLR(0.1, [2, 4]);
  assert.deepEqual([0, 1, 2, 3].map((e) => +m.step(e).toPrecision(6)), [0.1, 0.01, 0.01, 0.001]);
  const c = new CosineLR(0.1, 4);
  assert.ok(Math.abs(c.step(1) - 0.05) < 1e-12);
  assert.ok(Math.abs(c.step(3)) < 1e-12);
  assert.equal(createScheduler('constant', 0.3, 5).step(2, 9), 0.3);
  assert.throws(() => createScheduler('linear', 0.1, 5), /unknown scheduler linear/);
});
