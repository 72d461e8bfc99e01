import assert from 'node:assert/strict';
import {test} from 'node:test';

import {continuedPlan, evalShard, ShardPlan} from '../../src/coordinator/shard-plan.js';

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

test('continuedPlan: after a regroup the rest of the epoch is exactly what the completed steps left, re-sharded with the same global batch', () => {
  const base = {count: 100, globalBatch: 32, seed: 3, epoch: 1};
  const first = continuedPlan(base, [], 3);
  assert.deepEqual(first.order, new ShardPlan({...base, worldSize: 3}).order);
  const trained = (plan: ShardPlan, from: number, to: number) => Array.from({length: plan.worldSize}, (_, r) => Array.from({length: to - from}, (_, k) => [...plan.stepIndices(r, from + k)]).flat()).flat();
  // 3 ranks complete 2 steps, one dies; 2 ranks finish the epoch, then (another regroup after 1 step) 1 rank.
  const second = continuedPlan(base, [{worldSize: 3, steps: 2}], 2);
  assert.deepEqual([0, 1].map((r) => second.rankBatch(r)), [16, 16], 'the global batch stays 32');
  const third = continuedPlan(base, [{worldSize: 3, steps: 2}, {worldSize: 2, steps: 1}], 1);
  assert.equal(third.rankBatch(0), 32);
  const all = [...trained(first, 0, 2), ...trained(second, 0, 1), ...trained(third, 0, third.steps)];
  // every image of the epoch trained, none twice beyond the padding of the first plan (2 images) and of the second (none: 36 is even)
  assert.deepEqual(new Set(all).size, 100);
  assert.equal(all.length, 102);
  assert.deepEqual(new ShardPlan({...base, worldSize: 3}).remaining(first.steps).length, 0);
  assert.equal(continuedPlan(base, [{worldSize: 3, steps: first.steps}], 2).steps, 0, 'a regroup after the last step leaves nothing to train');
});
