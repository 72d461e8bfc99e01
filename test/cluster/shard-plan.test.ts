import assert from 'node:assert/strict';
import {test} from 'node:test';

import {evalShard, ShardPlan} from '../../src/coordinator/shard-plan.js';

test('ShardPlan: DistributedSampler shards — same permutation on every rank, padded to equal sizes, rank r takes r, r+N, …', () => {
  const plans = [0, 1, 2].map(() => new ShardPlan({count: 10, worldSize: 3, globalBatch: 6, seed: 5, epoch: 2}));
  assert.deepEqual(plans[0].order, plans[1].order);
  const p = plans[0];
  assert.equal(p.total, 12);
  assert.equal(p.shardSize, 4);
  const shards = [0, 1, 2].map((r) => p.shard(r));
  for (const s of shards) assert.equal(s.length, 4);
  const padded = [...p.order, p.order[0], p.order[1]];
  for (let r = 0; r < 3; r++) assert.deepEqual([...shards[r]], [0, 1, 2, 3].map((k) => padded[r + 3 * k]));
  // every image appears, the padding repeats the head of the permutation
  assert.deepEqual(new Set(shards.flatMap((s) => [...s])).size, 10);
  // a different epoch shuffles differently, the same epoch is reproducible
  assert.notDeepEqual(new ShardPlan({count: 10, worldSize: 3, globalBatch: 6, seed: 5, epoch: 3}).order, p.order);
  assert.deepEqual(new ShardPlan({count: 10, worldSize: 3, globalBatch: 6, seed: 5, epoch: 2}).order, p.order);
});

test('ShardPlan: global batch split like DataParallel, remainder to the first ranks, gradient scale gives the single-process mean', () => {
  const p = new ShardPlan({count: 100, worldSize: 3, globalBatch: 32, seed: 0, epoch: 0});
  assert.deepEqual([0, 1, 2].map((r) => p.rankBatch(r)), [11, 11, 10]);
  assert.equal(p.shardSize, 34);
  assert.equal(p.steps, Math.ceil(34 / 10));
  assert.deepEqual(p.stepCounts(0), [11, 11, 10]);
  assert.deepEqual(p.stepCounts(3), [1, 1, 4]);
  // every shard image is trained exactly once per epoch
  for (let r = 0; r < 3; r++) {
    const seen = Array.from({length: p.steps}, (_, s) => [...p.stepIndices(r, s)]).flat();
    assert.deepEqual(seen, [...p.shard(r)]);
  }
  // Σ_r scale_r·g_r / N = Σ_r n_r·g_r / Σ n  (weighted mean): check with scalar "gradients"
  for (let s = 0; s < p.steps; s++) {
    const counts = p.stepCounts(s);
    const g = [0.3, -1.2, 2.5];
    const viaRing = g.reduce((a, gr, r) => a + gr * p.gradientScale(r, s), 0) / 3;
    const direct = g.reduce((a, gr, r) => a + gr * counts[r], 0) / counts.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(viaRing - direct) < 1e-12, `step ${s}: ${viaRing} vs ${direct}`);
  }
  // equal slices: factor exactly 1
  const even = new ShardPlan({count: 64, worldSize: 2, globalBatch: 32, seed: 0, epoch: 0});
  assert.deepEqual([even.gradientScale(0, 0), even.gradientScale(1, 1)], [1, 1]);
  // one worker is the single-process loader: no padding, batch B, ceil(count/B) steps
  const one = new ShardPlan({count: 100, worldSize: 1, globalBatch: 32, seed: 0, epoch: 0});
  assert.deepEqual([one.total, one.steps, one.stepCounts(3)[0]], [100, 4, 4]);
  assert.throws(() => new ShardPlan({count: 10, worldSize: 4, globalBatch: 3, seed: 0, epoch: 0}), /at least the number of workers/);
});

test('evalShard: every test image exactly once over the ranks', () => {
  const all = [0, 1, 2].flatMap((r) => [...evalShard(10, r, 3)]).sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({length: 10}, (_, i) => i));
  assert.deepEqual([...evalShard(10, 1, 3)], [1, 4, 7]);
});
