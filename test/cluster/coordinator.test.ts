import assert from 'node:assert/strict';
import {test} from 'node:test';

import {aggregate, checksumMismatch} from '../../src/coordinator/job.js';
import {WorkerRegistry} from '../../src/coordinator/registry.js';
import type {EpochDone} from '../../src/gen/dtrain.js';
import {EpochDone as EpochDoneMsg} from '../../src/gen/dtrain.js';

test('a worker silent for longer than the heartbeat timeout is declared dead and its job told why', async () => {
  const lines: string[] = [];
  const registry = new WorkerRegistry(300, (l) => lines.push(l));
  const quiet = registry.register({workerId: '', host: 'h', ringEndpoint: '', backend: 'wasm', device: 'cpu', dtrainVersion: '0', protocolVersion: 1, pid: 1, metricsUrl: ''});
  const chatty = registry.register({workerId: '', host: 'h', ringEndpoint: '', backend: 'wasm', device: 'cpu', dtrainVersion: '0', protocolVersion: 1, pid: 2, metricsUrl: ''});
  quiet.state = 'busy';
  chatty.state = 'idle';
  let lost = '';
  quiet.onLost = (why) => (lost = why);
  registry.startWatchdog();
  const beat = setInterval(() => registry.touch(chatty), 50);
  await new Promise((r) => setTimeout(r, 700));
  clearInterval(beat);
  registry.stop();
  assert.equal(quiet.state, 'dead');
  assert.match(lost, /no heartbeat for \d+\.\d s \(timeout 0.3 s\)/);
  assert.equal(chatty.state, 'idle');
  assert.match(lines.join('\n'), new RegExp(`worker ${quiet.id} is dead`));
});

test('distributed eval: per-rank sums aggregate to the global loss, accuracy and per-class accuracy', () => {
  const rank = (p: Partial<EpochDone>): EpochDone => EpochDoneMsg.fromPartial(p);
  const r = aggregate(
    [
      rank({trainLossSum: 10, trainCorrect: 3, trainCount: 8, testLossSum: 4, testCorrectPerClass: [1, 0, 2, 0, 0, 0, 0, 0, 0, 0], testCountPerClass: [2, 1, 2, 0, 0, 0, 0, 0, 0, 0], seconds: 2, allreduceSeconds: 0.5, steps: 4}),
      rank({trainLossSum: 6, trainCorrect: 5, trainCount: 8, testLossSum: 2, testCorrectPerClass: [1, 1, 0, 0, 0, 0, 0, 0, 0, 0], testCountPerClass: [2, 1, 1, 0, 0, 0, 0, 0, 0, 0], seconds: 3, allreduceSeconds: 1.5, steps: 4}),
    ],
    0,
    0.1,
  );
  assert.equal(r.trainLoss, 1);
  assert.equal(r.trainAcc, 0.5);
  assert.equal(r.testLoss, 6 / 9);
  assert.equal(r.testAcc, 5 / 9);
  assert.equal(r.perClassAcc.airplane, 0.5);
  assert.equal(r.perClassAcc.automobile, 0.5);
  assert.equal(r.perClassAcc.bird, 2 / 3);
  assert.ok(Number.isNaN(r.perClassAcc.cat));
  assert.equal(r.seconds, 3);
  assert.equal(r.imagesPerSec, 16 / 3);
  assert.equal(r.allreduceSeconds, 1);
});

test('weights checksums: equal passes, a mismatch names the ranks on each side', () => {
  assert.equal(checksumMismatch(['aa', 'aa', 'aa']), undefined);
  assert.equal(checksumMismatch(['aaaa', 'aaaa', 'bbbb']), 'ranks 0, 1: aaaa vs rank 2: bbbb');
});
