import assert from 'node:assert/strict';
import {createHash} from 'node:crypto';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {generateSynthetic} from '../../src/data/index.js';
import {initBackend} from '../../src/engine/backend.js';
import {ShuffleNetV2} from '../../src/model/shufflenetv2.js';
import {SGD} from '../../src/optim/sgd.js';
import {type MeanReducer, Replica} from '../../src/worker/replica.js';

/** sha256 of weights, BN buffers and momentum, read synchronously (inside the onStep callback). */
function fullState(replica: Replica): string {
  const hash = createHash('sha256');
  const tensors: tf.Tensor[] = [...replica.model.params.values(), ...replica.model.buffers.values()];
  for (const t of tensors) hash.update(new Uint8Array((t.dataSync() as Float32Array).buffer));
  const momentum = replica.optimizer.cloneMomentum();
  for (const t of momentum.values()) hash.update(new Uint8Array((t.dataSync() as Float32Array).buffer));
  for (const t of momentum.values()) t.dispose();
  return hash.digest('hex');
}

test('Replica.halt undoes the step in flight (weights, BN buffers, momentum) and rollBackTo one completed step more; the tally follows', async () => {
  await initBackend('wasm');
  const {train} = generateSynthetic({trainCount: 24, testCount: 0, seed: 5});
  // A world of one whose reducer never answers the 4th all-reduce: the step in flight when a peer dies.
  let calls = 0;
  const reducer: MeanReducer = {allReduceMean: (data) => (++calls === 4 ? new Promise<Float32Array>(() => {}) : Promise.resolve(data))};
  const replica = new Replica(ShuffleNetV2.create(0.5, 3), new SGD({lr: 0.05, momentum: 0.9, weightDecay: 5e-4}), reducer, {jobId: 'halt', rank: 0, worldSize: 1, globalBatch: 4, seed: 1, augment: false});
  const initial = fullState(replica);
  const after: string[] = [];
  const counts: number[] = [];
  void replica.trainEpoch(train, 0, 0.05, (s) => {
    after.push(fullState(replica));
    counts.push(s.images);
  });
  while (calls < 4) await new Promise((r) => setTimeout(r, 20));
  assert.equal(after.length, 3);
  assert.notEqual(fullState(replica), after[2], 'the step in flight has already changed the BN buffers');
  assert.deepEqual(replica.halt(true), {stepsDone: 3, inFlight: true});
  assert.equal(fullState(replica), after[2], 'back to the state after step 3');
  replica.rollBackTo(2);
  assert.equal(fullState(replica), after[1], 'back to the state after step 2');
  assert.throws(() => replica.rollBackTo(0), /only the last step's state is kept/);
  assert.notEqual(after[0], initial);
  // The rest of the epoch after 2 steps: 4 more steps of 4 images; the sums cover the whole epoch once.
  const rest = await replica.trainEpoch(train, 0, 0.05, undefined, [{worldSize: 1, steps: 2}]);
  assert.equal(rest.trainCount, 24);
  assert.equal(rest.steps, 6);
  replica.dispose();
  replica.model.dispose();
  replica.optimizer.dispose();
});
