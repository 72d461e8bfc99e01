/** Half precision on typed arrays (src/allreduce/fp16.ts) and rings that carry it (compression 'fp16'). */
import assert from 'node:assert/strict';
import {describe, test} from 'node:test';

import {accumulateHalf, decodeHalf, encodeHalf, floatBitsToHalf, floatToHalf, HALF_MAX, halfToFloat} from '../../src/allreduce/fp16.js';
import {formLocalRing, NonFiniteAllReduceError, type RingAllReduce} from '../../src/allreduce/index.js';
import {assertBitwiseEqual, assertExactMean, randomVector} from './helpers.js';

/** The half's value from its fields, by the IEEE 754 formula (independent of the decode table). */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? Number.NaN : sign * Infinity;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Positive finite halves in order (0 … 65504), to find the nearest by search. */
const POSITIVE = Array.from({length: 0x7c00}, (_, h) => halfValue(h));

/** Reference rounding: the nearest half by binary search, ties to the even bit pattern, ≥ 65520 to Infinity. */
function nearestHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (POSITIVE[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (POSITIVE[lo] === a || lo === 0x7bff) return sign | lo;
  const below = a - POSITIVE[lo];
  const above = POSITIVE[lo + 1] - a;
  return sign | (below < above ? lo : above < below ? lo + 1 : lo % 2 === 0 ? lo : lo + 1);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0];
}

describe('fp16 conversion', () => {
  test('every one of the 65,536 halves decodes to its IEEE value and encodes back to the same bits (NaNs stay NaN)', () => {
    const all = Uint16Array.from({length: 65536}, (_, h) => h);
    const decoded = new Float32Array(65536);
    assert.equal(decodeHalf(all, decoded), 2 * 1024, 'decode counts ±Infinity and the NaNs');
    const again = new Uint16Array(65536);
    assert.equal(encodeHalf(decoded, again), 0, 'no overflow');
    for (let h = 0; h < 65536; h++) {
      const want = halfValue(h);
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(decoded[h]) && Number.isNaN(halfToFloat(h)), `0x${h.toString(16)} decodes to NaN`);
        assert.equal(again[h] & 0x7c00, 0x7c00, 'NaN stays NaN');
        assert.notEqual(again[h] & 0x3ff, 0, 'NaN stays NaN, not Infinity');
        assert.equal(again[h] & 0x8000, h & 0x8000, 'NaN keeps its sign');
        continue;
      }
      if (!Object.is(decoded[h], want) || !Object.is(halfToFloat(h), want)) assert.fail(`0x${h.toString(16)} decodes to ${decoded[h]} / ${halfToFloat(h)}, expected ${want}`);
      if (again[h] !== h) assert.fail(`0x${h.toString(16)} re-encodes to 0x${again[h].toString(16)}`);
    }
  });

  test('edge values: ties to even, the subnormal range, overflow to ±Infinity, signed zero, NaN', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [HALF_MAX, 0x7bff],
      [65519, 0x7bff], // below the midpoint 65520
      [65520, 0x7c00], // the midpoint rounds to even: Infinity
      [-70000, 0xfc00],
      [3.4e38, 0x7c00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -14 - 2 ** -25, 0x0400], // tie between 0x3ff and 0x400: even
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie between 0 and 2^-24: even (0)
      [2 ** -25 + 2 ** -40, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2: even
      [-(2 ** -30), 0x8000],
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02: even
      [1 + 2 ** -11 + 2 ** -23, 0x3c01],
      [0.1, 0x2e66],
    ];
    for (const [x, want] of cases) assert.equal(floatToHalf(x), want, `${x} → 0x${want.toString(16)}, got 0x${floatToHalf(x).toString(16)}`);
    assert.equal(floatToHalf(Number.NaN) & 0x7e00, 0x7e00, 'NaN → a quiet NaN');
    assert.equal(floatBitsToHalf(0x7f800001) & 0x7e00, 0x7e00, 'a signalling float32 NaN → a quiet half NaN');
    const x = Float32Array.from([65520, 1, -70000, Infinity, -Infinity, Number.NaN, 65504, 1e30]);
    assert.equal(encodeHalf(x, new Uint16Array(x.length)), 3, 'finite values that became ±Infinity are counted; ±Infinity and NaN inputs are not');
  });

  test('a sweep of float32 bit patterns (every 4099th, and both neighbours of every midpoint between halves) rounds to the nearest half, arrays and single values', () => {
    const inputs: number[] = [];
    for (let b = 0; b < 2 ** 32; b += 4099) inputs.push(b);
    for (let h = 0; h < 0x7bff; h++) {
      const mid = bitsOf((POSITIVE[h] + POSITIVE[h + 1]) / 2); // exact in float32: 12 significant bits
      inputs.push(mid - 1, mid, mid + 1, (mid | 0x80000000) >>> 0);
    }
    const bits = Uint32Array.from(inputs);
    const values = new Float32Array(bits.buffer);
    const out = new Uint16Array(bits.length);
    encodeHalf(values, out);
    for (let i = 0; i < bits.length; i++) {
      const want = nearestHalf(values[i]);
      const ok = Number.isNaN(values[i]) ? (out[i] & 0x7c00) === 0x7c00 && (out[i] & 0x3ff) !== 0 && floatBitsToHalf(bits[i]) === out[i] : out[i] === want && floatBitsToHalf(bits[i]) === want;
      if (!ok) assert.fail(`float32 0x${bits[i].toString(16)} (${values[i]}) → 0x${out[i].toString(16)}, expected 0x${want.toString(16)}`);
    }
    assert.ok(bits.length > 1_000_000);
  });

  test('encode with a divisor, accumulate (half + x / divisor → half, in place), any length (the SIMD kernels work 8 at a time)', () => {
    const x = Float32Array.from([3, -6, 65504 * 3, 1e-3, 9, 0.75, 12, 300_000, 1.5]); // 9 values: one past a multiple of 8
    const h = new Uint16Array(9);
    assert.equal(encodeHalf(x, h, 3), 1, '300000 / 3 overflows');
    assert.deepEqual([...h].map(halfToFloat), [1, -2, 65504, halfToFloat(floatToHalf(1e-3 / 3)), 3, 0.25, 4, Infinity, 0.5]);
    const acc = Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0, 0x7c00, 0x7bff, 0, 0x3c00, 0x3800]); // 1, −2, 65504, 0, Infinity, 65504, 0, 1, 0.5
    assert.equal(accumulateHalf(acc, Float32Array.from([1, 3, 0, 3e-3, 1, 96, 2 ** -26, -2, 0.25]), 2), 1, 'only 65504 + 48 overflows (Infinity + 0.5 was Infinity already)');
    assert.deepEqual([...acc].map(halfToFloat), [1.5, -0.5, 65504, halfToFloat(floatToHalf(1.5e-3)), Infinity, Infinity, 0, 0, 0.625]);
    assert.throws(() => accumulateHalf(acc, new Float32Array(2)), RangeError);
    assert.equal(decodeHalf(acc, new Float32Array(9)), 2);
  });
});

/** Every rank reduces its own copy of inputs[rank] with fp16 on the wire. */
async function reduceHalf(ranks: RingAllReduce[], inputs: Float32Array[], step: number): Promise<Float32Array[]> {
  const data = inputs.map((x) => x.slice());
  await Promise.all(ranks.map((r, i) => r.allReduceMean(data[i], {job: 'fp16', step})));
  return data;
}

describe('fp16 ring', () => {
  test('3 ranks over real sockets: every rank gets the same bits, halves within fp16 rounding of the exact mean, 2/5 of the float64-sums bytes', async () => {
    const n = 3;
    const ranks = await formLocalRing(n, {compression: 'fp16', chunkBytes: 256, timeoutMs: 10_000});
    try {
      let step = 0;
      for (const length of [1, 2, 1009, 100_003]) {
        // Magnitudes over 1e−7 … 10: normal and subnormal halves.
        const inputs = ranks.map((_, r) => randomVector(length, length, r).map((v, i) => v * 10 ** ((i % 9) - 7)));
        const sent = ranks.map((r) => r.totals.sentBytes);
        const out = await reduceHalf(ranks, inputs, step++);
        const halfBytes = ranks.map((r, i) => r.totals.sentBytes - sent[i]);
        assertBitwiseEqual(out);
        let differs = 0;
        for (let i = 0; i < length; i++) {
          const got = out[0][i];
          if (!Object.is(halfToFloat(floatToHalf(got)), got)) assert.fail(`element ${i}: ${got} is not a half`);
          let exact = 0;
          let magnitude = 0;
          for (const x of inputs) {
            exact += x[i] / n;
            magnitude += Math.abs(x[i]) / n;
          }
          // n roundings to half (one per hop, and the mean), each of a partial sum at most `magnitude`:
          // half an ulp is 2^−11 relative (plus a hair for the float32 division and addition), 2^−25 absolute among subnormals.
          const tol = n * (2 ** -11 * (1 + 2 ** -10) * magnitude + 2 ** -25);
          if (!(Math.abs(got - exact) <= tol)) assert.fail(`element ${i}: ${got} vs exact mean ${exact} (tolerance ${tol})`);
          if (Math.fround(exact) !== got) differs++;
        }
        if (length > 1000) assert.ok(differs > length / 10, `fp16 rounding shows: ${differs} of ${length} differ from the float32 mean`);
        // The same data without compression (a per-call override on the same ring) is the exactly rounded float64 mean.
        const before = ranks.map((r) => r.totals.sentBytes);
        const exactOut = inputs.map((x) => x.slice());
        const tag = {job: 'fp16', step: step++};
        await Promise.all(ranks.map((r, i) => r.allReduceMean(exactOut[i], tag, {compression: 'none'})));
        assertExactMean(exactOut[0], inputs);
        // Over all ranks each phase sends (N−1)·length values: 2 + 2 bytes each with fp16; without, 4
        // in reduce-scatter's step 0 (a rank's own float32 values), 8 in its later steps (float64
        // partial sums), 4 in all-gather.
        const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
        assert.equal(sum(halfBytes), 4 * (n - 1) * length);
        assert.equal(sum(ranks.map((r, i) => r.totals.sentBytes - before[i])), (4 + 8 * (n - 2) + 4 * (n - 1)) * length);
      }
      assert.equal(ranks.reduce((a, r) => a + r.dropped, 0), 0);
    } finally {
      for (const r of ranks) r.close();
    }
  });

  test('overflow: a value beyond ±65504 fails the call on every rank with the same count, names the rank where it overflowed; NaN inputs too; the ring stays usable', async () => {
    const n = 3;
    const ranks = await formLocalRing(n, {compression: 'fp16', chunkBytes: 64, timeoutMs: 10_000});
    try {
      const length = 50;
      // Rank 1 holds 3e5 at element 7: its share (1e5) cannot be encoded. Element 9: 60000 on every rank: shares and mean fit.
      const inputs = ranks.map((_, r) => {
        const x = randomVector(length, 3, r);
        x[9] = 60_000;
        if (r === 1) x[7] = 300_000;
        return x;
      });
      const errors = await Promise.all(ranks.map((r, i) => r.allReduceMean(inputs[i].slice(), {job: 'fp16', step: 0}).then(() => undefined, (e: unknown) => e)));
      errors.forEach((e, rank) => {
        assert.ok(e instanceof NonFiniteAllReduceError, `rank ${rank} fails`);
        assert.equal(e.count, 1);
        assert.equal(e.firstIndex, 7);
        assert.equal(e.firstValue, Infinity);
        assert.equal(e.overflowedHere, rank === 1 ? 1 : 0, `rank ${rank} names its own overflow`);
        assert.match(e.message, /fp16 all-reduce in job fp16 step 0 gave 1 non-finite value \(first: element 7 = Infinity\)/);
        assert.match(e.suggestion ?? '', /--grad-compression none/);
      });
      inputs[1][7] = Number.NaN;
      const nan = await Promise.all(ranks.map((r, i) => r.allReduceMean(inputs[i].slice(), {job: 'fp16', step: 1}).then(() => undefined, (e: unknown) => e)));
      nan.forEach((e) => {
        assert.ok(e instanceof NonFiniteAllReduceError);
        assert.equal(e.overflowedHere, 0, 'nothing overflowed: an input was NaN');
        assert.equal(e.firstIndex, 7);
        assert.ok(Number.isNaN(e.firstValue));
      });
      inputs[1][7] = 0.5;
      const out = await reduceHalf(ranks, inputs, 2);
      assertBitwiseEqual(out);
      assert.equal(out[0][9], 60_000, 'a mean whose inputs fit does not overflow: shares are divided before they are summed');
    } finally {
      for (const r of ranks) r.close();
    }
  });
});
