/** RingAllReduce with every rank in this process, each with its own sockets on loopback. */
import assert from 'node:assert/strict';
import {describe, test} from 'node:test';

import {Push} from 'zeromq';

import {encodeHeader, jobHash, Phase} from '../../src/allreduce/header.js';
import {AllReduceTimeoutError, formLocalRing, RingAllReduce, type RingOptions} from '../../src/allreduce/index.js';
import {assertBitwiseEqual, assertExactMean, assertMeanClose, deadEndpoint, mean64, randomVector} from './helpers.js';

/** Forms a local ring, runs fn, always closes every rank (twice: close() must be idempotent). */
async function withRing<T>(worldSize: number, options: Omit<RingOptions, 'rank' | 'worldSize'>, fn: (ranks: RingAllReduce[]) => Promise<T>): Promise<T> {
  const ranks = await formLocalRing(worldSize, options);
  try {
    return await fn(ranks);
  } finally {
    for (const r of ranks) r.close();
    for (const r of ranks) r.close();
  }
}

/** All ranks reduce their own copy of inputs[rank]; returns the results (in place, so the same arrays). */
async function reduceAll(ranks: RingAllReduce[], inputs: Float32Array[], step: number, job = 'test'): Promise<Float32Array[]> {
  const data = inputs.map((x) => x.slice());
  const out = await Promise.all(ranks.map((r, i) => r.allReduceMean(data[i], {job, step})));
  out.forEach((o, i) => assert.equal(o, data[i], 'the result is the input array, reduced in place'));
  return out;
}

describe('RingAllReduce', () => {
  test('N = 1 returns the input unchanged without any socket', async () => {
    const ring = new RingAllReduce({rank: 0, worldSize: 1});
    const x = randomVector(17, 1, 0);
    const copy = x.slice();
    assert.equal(await ring.allReduceMean(x, {job: 'j', step: 0}), x);
    assert.deepEqual(x, copy);
    assert.equal(ring.endpoint, undefined);
    ring.close();
    ring.close();
  });

  for (const n of [2, 3, 4, 5]) {
    test(`N = ${n}: mean of random data is the exactly rounded mean (float64 partial sums), bitwise identical on every rank`, async () => {
      // Small chunks make the short lengths span several chunks and segments.
      await withRing(n, {chunkBytes: 64, timeoutMs: 10_000}, async (ranks) => {
        let step = 0;
        for (const length of [0, 1, n - 1, n + 1, 1009]) {
          const inputs = ranks.map((_, r) => randomVector(length, length, r));
          const out = await reduceAll(ranks, inputs, step++);
          assertExactMean(out[0], inputs);
          assertBitwiseEqual(out);
        }
      });
      await withRing(n, {timeoutMs: 10_000}, async (ranks) => {
        const length = 1_000_003;
        const inputs = ranks.map((_, r) => randomVector(length, 7, r));
        const out = await reduceAll(ranks, inputs, 0);
        assertExactMean(out[0], inputs);
        assertBitwiseEqual(out);
      });
    });
  }

  test('float32 partial sums: within float32 rounding of the mean, and (unlike float64 ones) dependent on the ring order', async () => {
    // 2^24 + 1 − 2^24: exact in float64 whatever the order; in float32 the order decides whether the 1 survives.
    const inputs = [Float32Array.of(2 ** 24, 1, 1), Float32Array.of(1, 2 ** 24, -(2 ** 24)), Float32Array.of(-(2 ** 24), -(2 ** 24), 2 ** 24)];
    const exact = await withRing(3, {chunkBytes: 4, timeoutMs: 10_000}, (ranks) => reduceAll(ranks, inputs, 0));
    assertExactMean(exact[0], inputs);
    await withRing(3, {chunkBytes: 4, timeoutMs: 10_000, partialSums: 'float32'}, async (ranks) => {
      const out = await reduceAll(ranks, inputs, 0);
      assertBitwiseEqual(out);
      assert.notDeepEqual(out[0], exact[0], 'some element lost its 1 to float32 rounding in ring order');
      const random = ranks.map((_, r) => randomVector(1009, 3, r));
      assertMeanClose((await reduceAll(ranks, random, 1))[0], mean64(random), 3);
    });
  });

  test('many consecutive steps (tags advance), sum as well as mean, on a subarray view', async () => {
    await withRing(3, {chunkBytes: 400, timeoutMs: 10_000}, async (ranks) => {
      for (let step = 0; step < 30; step++) {
        const inputs = ranks.map((_, r) => randomVector(997, 100 + step, r));
        const out = await reduceAll(ranks, inputs, step, 'many');
        assertMeanClose(out[0], mean64(inputs), 3);
        assertBitwiseEqual(out);
      }
      // A view into a larger buffer at an offset: only the view is reduced.
      const backing = ranks.map((_, r) => randomVector(1000, 5, r));
      const views = backing.map((b) => b.subarray(3, 503));
      const before = backing.map((b) => [b[2], b[503]]);
      const want = mean64(views.map((v) => v.slice())).map((m) => m * 3);
      await Promise.all(ranks.map((r, i) => r.allReduceSum(views[i], {job: 'many', step: 30})));
      assertMeanClose(views[0], Float64Array.from(want), 3 * 3);
      assertBitwiseEqual(views);
      backing.forEach((b, r) => assert.deepEqual([b[2], b[503]], before[r], 'elements outside the view are untouched'));
    });
  });

  test('malformed and unexpected messages are logged and dropped; the reduce still completes', async () => {
    const lines: string[] = [];
    await withRing(3, {chunkBytes: 256, timeoutMs: 10_000, logger: (l) => lines.push(l)}, async (ranks) => {
      const victim = ranks[1];
      const intruder = new Push({linger: 0});
      intruder.connect(victim.endpoint!);
      try {
        // The header rank 1 expects first (reduce-scatter step 0, chunk 0 of segment 0), then variations of it.
        const good = {phase: Phase.reduceScatter, sender: 0, worldSize: 3, ringStep: 0, jobHash: jobHash('job'), step: 4, chunk: 0, offset: 0, count: 64};
        const f32 = Buffer.from(new Float32Array(64).fill(1e30).buffer);
        await intruder.send(Buffer.from('not a ring message'));
        await intruder.send([Buffer.alloc(32, 7), f32]);
        await intruder.send([encodeHeader({...good, jobHash: jobHash('other job')}), f32]);
        await intruder.send([encodeHeader({...good, step: 3}), f32]);
        await intruder.send([encodeHeader({...good, sender: 2}), f32]);
        await intruder.send([encodeHeader({...good, chunk: 1}), f32]);
        await intruder.send([encodeHeader(good), Buffer.alloc(3)]);
        // Let the junk reach the victim's inbox first, so that it is read during the reduce (interleaved with
        // the ring's messages by fair queuing, so the last one may count as out of sequence rather than short).
        await new Promise((r) => setTimeout(r, 100));
        const inputs = ranks.map((_, r) => randomVector(300, 9, r));
        const out = await reduceAll(ranks, inputs, 4, 'job');
        assertMeanClose(out[1], mean64(inputs), 3);
        assertBitwiseEqual(out);
      } finally {
        intruder.close();
      }
      assert.ok(victim.dropped >= 7, `dropped ${victim.dropped}`);
      for (const reason of ['frames', 'bad magic', 'another job', 'stale step 3', 'from rank 2', 'out of sequence']) {
        assert.ok(
          lines.some((l) => l.includes(reason)),
          `a log line mentions "${reason}":\n${lines.join('\n')}`,
        );
      }
    });
  });

  test('a rank that never joins: timeout naming that peer and its endpoint, within the configured time', async () => {
    const missing = await deadEndpoint();
    const timeoutMs = 400;
    const ranks = [0, 1].map((rank) => new RingAllReduce({rank, worldSize: 3, timeoutMs}));
    try {
      const peers = [await ranks[0].start(), await ranks[1].start(), missing];
      for (const r of ranks) r.connect(peers);
      const t0 = performance.now();
      const results = await Promise.allSettled(ranks.map((r) => r.allReduceMean(randomVector(100, 1, r.rank), {job: 'j', step: 0})));
      const elapsed = performance.now() - t0;
      assert.ok(elapsed < timeoutMs + 1500, `gave up after ${elapsed} ms`);
      const [first] = results;
      assert.equal(first.status, 'rejected');
      const err = (first as PromiseRejectedResult).reason;
      assert.ok(err instanceof AllReduceTimeoutError, String(err));
      assert.equal(err.peerRank, 2);
      assert.match(err.message, /predecessor rank 2/);
      assert.ok(err.message.includes(missing), err.message);
      assert.equal(results[1].status, 'rejected');
      // After a failure the ring refuses to run until re-formed.
      await assert.rejects(ranks[0].allReduceMean(new Float32Array(4), {job: 'j', step: 1}), /broken/);
    } finally {
      for (const r of ranks) r.close();
    }
  });

  test('given only its successor, a rank learns its predecessor from the hello and names it on timeout', async () => {
    const ranks = [0, 1, 2].map((rank) => new RingAllReduce({rank, worldSize: 3, timeoutMs: 300}));
    try {
      const peers = await Promise.all(ranks.map((r) => r.start()));
      ranks.forEach((r, i) => r.connect(peers[(i + 1) % 3]));
      await reduceAll(ranks, ranks.map((_, r) => randomVector(50, 2, r)), 0);
      ranks[2].close();
      const err = await ranks[0].allReduceMean(new Float32Array(50), {job: 'test', step: 1}).catch((e: unknown) => e);
      assert.ok(err instanceof AllReduceTimeoutError, String(err));
      assert.ok(err.message.includes(peers[2]), err.message);
    } finally {
      for (const r of ranks) r.close();
    }
  });

  test('the ring re-forms with a new world size and new ranks on the same endpoints', async () => {
    const ranks = await formLocalRing(3, {timeoutMs: 10_000, chunkBytes: 128});
    try {
      const peers = ranks.map((r) => r.endpoint!);
      let inputs = ranks.map((_, r) => randomVector(333, 3, r));
      assertMeanClose((await reduceAll(ranks, inputs, 0))[0], mean64(inputs), 3);
      // Old rank 2 leaves; old rank 1 becomes rank 0 and old rank 0 becomes rank 1.
      ranks[2].close();
      const two = [ranks[1], ranks[0]];
      two.forEach((r, rank) => r.connect([peers[1], peers[0]], {rank, worldSize: 2}));
      inputs = two.map((_, r) => randomVector(333, 4, r));
      const out = await reduceAll(two, inputs, 1);
      assertMeanClose(out[0], mean64(inputs), 2);
      assertBitwiseEqual(out);
      assert.deepEqual(
        two.map((r) => [r.rank, r.worldSize]),
        [
          [0, 2],
          [1, 2],
        ],
      );
    } finally {
      for (const r of ranks) r.close();
    }
  });

  test('misuse fails loudly', async () => {
    assert.throws(() => new RingAllReduce({rank: 3, worldSize: 3}), /rank/);
    assert.throws(() => new RingAllReduce({rank: 0, worldSize: 0}), /worldSize/);
    assert.throws(() => new RingAllReduce({rank: 0, worldSize: 2, timeoutMs: 0}), /timeoutMs/);
    const ring = new RingAllReduce({rank: 0, worldSize: 2});
    await assert.rejects(ring.allReduceMean(new Float32Array(4), {job: 'j', step: 0}), /start\(\) and connect\(\)/);
    const [a, b] = await Promise.all([ring.start(), ring.start()]);
    assert.equal(a, b, 'concurrent start() calls share one bind');
    assert.match(a, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    await assert.rejects(ring.allReduceMean(new Float32Array(4), {job: 'j', step: -1}), /step/);
    ring.connect([a, await deadEndpoint()]);
    const pending = ring.allReduceMean(new Float32Array(4), {job: 'j', step: 0});
    ring.close();
    await assert.rejects(pending, /closed during an all-reduce/);
    await assert.rejects(ring.allReduceMean(new Float32Array(4), {job: 'j', step: 0}), /closed/);
  });
});
