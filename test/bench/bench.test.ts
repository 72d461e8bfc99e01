/** Benchmark arithmetic and flag parsing (never speed: benchmarks are not tests). */
import assert from 'node:assert/strict';
import {describe, test} from 'node:test';

import {summarise} from '../../src/allreduce/bench.js';
import {parseCompressions, parsePartialSums, parseWorkerCounts} from '../../src/bench/allreduce.js';
import {runArgs, type ScalingOptions, scalingRow, withEfficiency} from '../../src/bench/scaling.js';
import {median, ratio} from '../../src/bench/stats.js';
import {UserError} from '../../src/cli/errors.js';

describe('bench arithmetic', () => {
  test('median: middle value, or mean of the middle two; input untouched', () => {
    const xs = [5, 1, 3];
    assert.equal(median(xs), 3);
    assert.deepEqual(xs, [5, 1, 3]);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([7]), 7);
    assert.throws(() => median([]));
  });

  test('ratio: a/b, null without a positive b (PyTorch absent)', () => {
    assert.equal(ratio(30, 60), 0.5);
    assert.equal(ratio(3, null), null);
    assert.equal(ratio(3, undefined), null);
    assert.equal(ratio(3, 0), null);
  });

  test('summarise: per iteration the slowest rank, median of those, nccl-tests busbw', () => {
    const r = summarise('plain', 4, 8e6, [
      [1, 4, 2],
      [3, 1, 2],
      [1, 1, 5],
      [2, 2, 1],
    ]);
    // slowest per iteration: 3, 4, 5 → median 4 ms; 8 MB / 4 ms = 2 GB/s; busbw = 2 · 2·3/4 = 3.
    assert.deepEqual([r.medianMs, r.minMs, r.maxMs, r.algbwGBs, r.busbwGBs], [4, 3, 5, 2, 3]);
  });

  test('--workers 2,4 and --partial-sums lists; bad values are usage errors', () => {
    assert.deepEqual(parseWorkerCounts('2,4'), [2, 4]);
    assert.deepEqual(parseWorkerCounts(' 3 '), [3]);
    for (const bad of ['0', '2,x', '1.5', '']) assert.throws(() => parseWorkerCounts(bad), UserError, bad);
    assert.deepEqual(parsePartialSums('float64,float32'), ['float64', 'float32']);
    assert.deepEqual(parsePartialSums('float32,float32'), ['float32']);
    assert.throws(() => parsePartialSums('float16'), UserError);
    assert.deepEqual(parseCompressions('none,fp16'), ['none', 'fp16']);
    assert.deepEqual(parseCompressions('fp16'), ['fp16']);
    assert.throws(() => parseCompressions('none,fp8'), (e: UserError) => e.exitCode === 2 && /unknown --grad-compression "fp8"/.test(e.message));
  });

  test('scaling: the last epoch of `dtrain run --json`, share in all-reduce, efficiency against the first count', () => {
    const epoch = (imagesPerSec: number, seconds: number, allreduceSeconds: number) => ({epoch: 0, trainLoss: 0, trainAcc: 0, testLoss: 0, testAcc: 0, lr: 0.1, imagesPerSec, seconds, images: 1024, steps: 8, allreduceSeconds, checkpoint: '', perClassAcc: {}, lostSteps: 0, workers: 1});
    const one = scalingRow({workers: 1, gradCompression: 'none', backend: 'wasm', device: 'CPU', epochs: [epoch(50, 20, 0), epoch(100, 10.24, 0)]});
    const two = scalingRow({workers: 2, gradCompression: 'fp16', backend: 'wasm', device: 'CPU', epochs: [epoch(100, 10, 2), epoch(160, 8, 1)]});
    assert.equal(two.gradCompression, 'fp16');
    assert.equal(one.imagesPerSec, 100);
    assert.equal(two.allreduceShare, 0.125);
    const rows = withEfficiency([one, two]);
    assert.deepEqual(rows.map((r) => r.efficiency), [1, 0.8]);
    assert.throws(() => scalingRow({workers: 1, gradCompression: 'none', backend: 'wasm', device: 'CPU', epochs: []}), UserError);
  });

  test('scaling: every count takes the cluster path (--checkpoint-dir), same global batch and data', () => {
    const options: ScalingOptions = {workers: [1, 2], size: 0.5, globalBatch: 128, trainLimit: 1024, testLimit: 64, epochs: 2, backend: 'auto', compressions: ['none', 'fp16']};
    const args = runArgs(options, 1, '/tmp/x');
    assert.deepEqual(args.slice(0, 4), ['run', '--json', '--workers', '1']);
    assert.equal(args[args.indexOf('--grad-compression') + 1], 'none');
    const fp16 = runArgs(options, 2, '/tmp/x', 'fp16');
    assert.equal(fp16[fp16.indexOf('--grad-compression') + 1], 'fp16');
    for (const [flag, value] of [['--batch-size', '128'], ['--data', 'synthetic'], ['--train-limit', '1024'], ['--checkpoint-dir', '/tmp/x'], ['--run-dir', '/tmp/x']]) assert.equal(args[args.indexOf(flag) + 1], value, flag);
  });
});
