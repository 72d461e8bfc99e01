import assert from 'node:assert/strict';
import {describe, test} from 'node:test';

import {type AugmentParams, type Dataset, generateSynthetic, makeBatch, PAD_VALUE} from '../../src/data/index.js';
import {Random} from '../../src/util/random.js';

const {train: ds} = generateSynthetic({trainCount: 64, testCount: 0, seed: 11});

/** torchvision's ToTensor + Normalize(0.5, 0.5) in float32, step by step. */
const norm = (v: number): number => Math.fround(Math.fround(Math.fround(v / 255) - 0.5) / 0.5);

/**
 * The seed's pipeline written the obvious way (pad to 40×40 with zeros, crop at (i, j), flip, normalise),
 * returning NHWC values of one image.
 */
function reference(d: Dataset, idx: number, p?: AugmentParams): Float32Array {
  const out = new Float32Array(3072);
  const padded = (c: number, y: number, x: number): number => {
    const sy = y - 4;
    const sx = x - 4;
    return sy < 0 || sy > 31 || sx < 0 || sx > 31 ? 0 : d.images[idx * 3072 + c * 1024 + sy * 32 + sx];
  };
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      for (let c = 0; c < 3; c++) {
        let v: number;
        if (!p) v = d.images[idx * 3072 + c * 1024 + y * 32 + x];
        else {
          const cx = p.flip ? 31 - x : x;
          v = padded(c, y + p.i, cx + p.j);
        }
        out[(y * 32 + x) * 3 + c] = norm(v);
      }
    }
  }
  return out;
}

/** A Random whose next() returns scripted values: forces the crop and flip draws. */
class Scripted extends Random {
  constructor(private readonly values: number[]) {
    super(0);
  }
  override next(): number {
    const v = this.values.shift();
    if (v === undefined) throw new Error('script exhausted');
    return v;
  }
}
/** next() value that makes int(9) return k. */
const draw9 = (k: number): number => (k + 0.5) / 9;

describe('augmentation and batching (torchvision RandomCrop(32, 4) + RandomHorizontalFlip + Normalize(0.5, 0.5))', () => {
  test('test transform is exact, NHWC, labels as int32', () => {
    const idx = [5, 0, 63];
    const b = makeBatch(ds, idx, {augment: false});
    assert.equal(b.n, 3);
    assert.equal(b.x.length, 3 * 3072);
    assert.deepEqual([...b.labels], idx.map((i) => ds.labels[i]));
    idx.forEach((i, k) => assert.deepEqual(b.x.subarray(k * 3072, (k + 1) * 3072), reference(ds, i)));
    assert.equal(norm(0), -1);
    assert.equal(norm(255), 1);
  });

  test('padding becomes exactly -1; extreme crops shift by 4 pixels', () => {
    assert.equal(PAD_VALUE, -1);
    // i=0, j=0: content moves down-right by 4, top 4 rows and left 4 columns are padding.
    const b = makeBatch(ds, [3], {augment: true, rng: new Scripted([draw9(0), draw9(0), 0.9])});
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        for (let c = 0; c < 3; c++) {
          const v = b.x[(y * 32 + x) * 3 + c];
          if (y < 4 || x < 4) assert.equal(v, -1, `(${y},${x}) should be padding`);
          else assert.equal(v, norm(ds.images[3 * 3072 + c * 1024 + (y - 4) * 32 + (x - 4)]));
        }
      }
    }
    // i=8, j=8: the bottom 4 rows and right 4 columns are padding.
    const c = makeBatch(ds, [3], {augment: true, rng: new Scripted([draw9(8), draw9(8), 0.9])});
    assert.equal(c.x[(31 * 32 + 10) * 3], -1);
    assert.equal(c.x[(10 * 32 + 31) * 3 + 2], -1);
    assert.equal(c.x[(27 * 32 + 27) * 3 + 1], norm(ds.images[3 * 3072 + 1024 + 31 * 32 + 31]));
  });

  test('flip mirrors the crop; draw order is crop i, crop j, flip', () => {
    // Centre crop (i=j=4) + flip = the image mirrored left-right.
    const b = makeBatch(ds, [7], {augment: true, rng: new Scripted([draw9(4), draw9(4), 0.2])});
    const plain = reference(ds, 7);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) assert.equal(b.x[(y * 32 + x) * 3 + c], plain[(y * 32 + (31 - x)) * 3 + c]);
    // Centre crop without flip = the test transform.
    const n = makeBatch(ds, [7], {augment: true, rng: new Scripted([draw9(4), draw9(4), 0.7])});
    assert.deepEqual(n.x, plain);
    // i=1 (shift down 3), j=6 (shift left 2), flipped: checks the order of the three draws.
    const seen: AugmentParams[] = [];
    const o = makeBatch(ds, [7], {augment: true, rng: new Scripted([draw9(1), draw9(6), 0.1]), onParams: (_, p) => seen.push(p)});
    assert.deepEqual(seen, [{i: 1, j: 6, flip: true}]);
    assert.deepEqual(o.x, reference(ds, 7, {i: 1, j: 6, flip: true}));
  });

  test('random draws: every batch equals the reference for its draws; offsets cover 0..8; flips ≈ half', () => {
    const rng = new Random(1234);
    const counts = {i: new Array<number>(9).fill(0), j: new Array<number>(9).fill(0), flips: 0, total: 0};
    for (let round = 0; round < 60; round++) {
      const idx = new Random(round).permutation(ds.count).subarray(0, 32);
      const params: AugmentParams[] = [];
      const b = makeBatch(ds, idx, {augment: true, rng, onParams: (k, p) => (params[k] = p)});
      for (let k = 0; k < b.n; k++) {
        const p = params[k];
        assert.ok(Number.isInteger(p.i) && p.i >= 0 && p.i <= 8 && Number.isInteger(p.j) && p.j >= 0 && p.j <= 8, JSON.stringify(p));
        counts.i[p.i]++;
        counts.j[p.j]++;
        counts.flips += p.flip ? 1 : 0;
        counts.total++;
        if (round < 5) assert.deepEqual(b.x.subarray(k * 3072, (k + 1) * 3072), reference(ds, idx[k], p));
        assert.equal(b.labels[k], ds.labels[idx[k]]);
      }
    }
    // 1920 draws: each offset expected 213 times; all 9 values must appear often.
    for (const c of [...counts.i, ...counts.j]) assert.ok(c > 150 && c < 280, `offset counts ${counts.i} / ${counts.j}`);
    assert.ok(Math.abs(counts.flips / counts.total - 0.5) < 0.05, `flip ratio ${counts.flips / counts.total}`);
  });

  test('reproducible: the same seed gives the same batch; 3 draws per image', () => {
    const idx = [1, 2, 3, 4, 5, 6, 7, 8];
    const a = makeBatch(ds, idx, {augment: true, rng: new Random(99)});
    const r = new Random(99);
    const b = makeBatch(ds, idx, {augment: true, rng: r});
    assert.deepEqual(a.x, b.x);
    const manual = new Random(99);
    for (let k = 0; k < 3 * idx.length; k++) manual.next();
    assert.equal(r.getState(), manual.getState());
    const c = makeBatch(ds, idx, {augment: true, rng: new Random(100)});
    assert.notDeepEqual(a.x, c.x);
    assert.throws(() => makeBatch(ds, idx, {augment: true}), /needs an rng/);
  });

  test('out buffers are reused (no allocation); a short last batch returns views; bad indices throw', () => {
    const out = {x: new Float32Array(8 * 3072), labels: new Int32Array(8)};
    const full = makeBatch(ds, [0, 1, 2, 3, 4, 5, 6, 7], {augment: false, out});
    assert.equal(full.x, out.x);
    assert.equal(full.labels, out.labels);
    const short = makeBatch(ds, [9, 10, 11], {augment: false, out});
    assert.equal(short.n, 3);
    assert.equal(short.x.length, 3 * 3072);
    assert.equal(short.x.buffer, out.x.buffer);
    assert.deepEqual(short.x, makeBatch(ds, [9, 10, 11], {augment: false}).x);
    assert.throws(() => makeBatch(ds, [64], {augment: false}), RangeError);
    assert.throws(() => makeBatch(ds, [0, 1], {augment: false, out: {x: new Float32Array(3072), labels: new Int32Array(2)}}), RangeError);
  });

  test('fast enough for every step: a 128-image augmented batch in well under 10 ms', () => {
    const big = generateSynthetic({trainCount: 512, testCount: 0, seed: 1}).train;
    const rng = new Random(0);
    const out = {x: new Float32Array(128 * 3072), labels: new Int32Array(128)};
    const idx = rng.permutation(big.count).subarray(0, 128);
    for (let w = 0; w < 5; w++) makeBatch(big, idx, {augment: true, rng, out});
    const t0 = performance.now();
    const rounds = 50;
    for (let r = 0; r < rounds; r++) makeBatch(big, idx, {augment: true, rng, out});
    const ms = (performance.now() - t0) / rounds;
    assert.ok(ms < 10, `${ms.toFixed(2)} ms per batch of 128`);
  });
});
