import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {generateSynthetic} from '../../src/data/index.js';
import {initBackend} from '../../src/engine/backend.js';
import {ShuffleNetV2} from '../../src/model/shufflenetv2.js';
import {SGD} from '../../src/optim/sgd.js';
import {Trainer} from '../../src/worker/trainer.js';

test('size 0.5 learns a small synthetic set on wasm: loss falls, test accuracy well above chance, no tensor leak', async () => {
  await initBackend('wasm');
  const {train, test: testSet} = generateSynthetic({trainCount: 640, testCount: 200, seed: 3});
  const model = ShuffleNetV2.create(0.5, 1);
  const optimizer = new SGD({lr: 0.05, momentum: 0.9, weightDecay: 5e-4});
  const trainer = new Trainer(model, optimizer, {batchSize: 32, seed: 7});
  const before = await trainer.evaluate(testSet);
  const losses: number[] = [];
  const tensorCounts: number[] = [];
  for (let epoch = 0; epoch < 4; epoch++) {
    const r = await trainer.trainEpoch(train, epoch, (p) => {
      if (p.step > 1) tensorCounts.push(tf.memory().numTensors);
    });
    losses.push(r.trainLoss);
  }
  const after = await trainer.evaluate(testSet);
  console.log(`losses ${losses.map((l) => l.toFixed(3)).join(' ')}, test accuracy ${before.accuracy} → ${after.accuracy}`);
  assert.ok(losses[3] < losses[0] * 0.8, `train loss should fall: ${losses}`);
  assert.ok(after.accuracy > 0.3, `test accuracy ${after.accuracy} should be well above 10%`);
  assert.equal(new Set(tensorCounts).size, 1, `tensor count must not grow across steps: ${[...new Set(tensorCounts)]}`);
  assert.equal(after.perClass.length, 10);
  assert.equal(after.count, 200);
  model.dispose();
  optimizer.dispose();
});
