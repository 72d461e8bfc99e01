import assert from 'node:assert/strict';
import {promises as fs} from 'node:fs';
import {after, describe, test} from 'node:test';

import {classCounts, datasetDigest, type Dataset, generateSynthetic, loadCifar10, writeCifar10Dir} from '../../src/data/index.js';
import {tempDir} from './helpers.js';

/** Nearest class-mean on raw pixels: a crude learner, to show the data has signal but is not trivial. */
function nearestMeanAccuracy(train: Dataset, test: Dataset): number {
  const D = 3072;
  const means = Array.from({length: 10}, () => new Float64Array(D));
  const n = new Array<number>(10).fill(0);
  for (let k = 0; k < train.count; k++) {
    const m = means[train.labels[k]];
    n[train.labels[k]]++;
    for (let d = 0; d < D; d++) m[d] += train.images[k * D + d];
  }
  means.forEach((m, c) => m.forEach((v, d) => (m[d] = v / n[c])));
  let ok = 0;
  for (let k = 0; k < test.count; k++) {
    let best = -1;
    let bestDist = Infinity;
    for (let c = 0; c < 10; c++) {
      let s = 0;
      for (let d = 0; d < D; d++) {
        const v = test.images[k * D + d] - means[c][d];
        s += v * v;
      }
      if (s < bestDist) [best, bestDist] = [c, s];
    }
    if (best === test.labels[k]) ok++;
  }
  return ok / test.count;
}

describe('synthetic dataset', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await fs.rm(d, {recursive: true, force: true});
  });

  test('the same seed gives the same bytes (pinned: identical on every machine)', () => {
    const a = generateSynthetic({trainCount: 200, testCount: 50, seed: 42});
    const b = generateSynthetic({trainCount: 200, testCount: 50, seed: 42});
    assert.deepEqual(a.train.images, b.train.images);
    assert.deepEqual(a.test.labels, b.test.labels);
    // Golden digests: a change here changes every synthetic run; update only on purpose.
    assert.equal(datasetDigest(a.train), '0cd294f139dc008cee2831c84383d253d6cb89c6ce404164c8f08ccc501ae967');
    assert.equal(datasetDigest(a.test), '28aee362d594f9b0ae4e6b4dc9008b146934516c387a1657479a6ac0d34cd467');
  });

  test('another seed gives other images; train and test differ', () => {
    const a = generateSynthetic({trainCount: 50, testCount: 50, seed: 1});
    const b = generateSynthetic({trainCount: 50, testCount: 50, seed: 2});
    assert.notDeepEqual(a.train.images, b.train.images);
    assert.notDeepEqual(a.train.images, a.test.images);
  });

  test('balanced: every block of 10 holds each class once; the first N of a bigger set equal a set of N', () => {
    const {train, test: testSet} = generateSynthetic({trainCount: 1000, testCount: 300, seed: 5});
    assert.deepEqual(classCounts(train), new Array(10).fill(100));
    assert.deepEqual(classCounts(testSet), new Array(10).fill(30));
    for (let b = 0; b < 100; b++) assert.deepEqual([...train.labels.subarray(b * 10, b * 10 + 10)].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const small = generateSynthetic({trainCount: 37, testCount: 3, seed: 5});
    assert.deepEqual(small.train.images, train.images.subarray(0, 37 * 3072));
    assert.deepEqual(small.train.labels, train.labels.subarray(0, 37));
    assert.equal(small.test.count, 3);
  });

  test('pixels use the whole range and are not constant', () => {
    const {train} = generateSynthetic({trainCount: 100, testCount: 0, seed: 0});
    let min = 255;
    let max = 0;
    for (const v of train.images) [min, max] = [Math.min(min, v), Math.max(max, v)];
    assert.ok(min < 20 && max > 235, `range ${min}..${max}`);
  });

  test('learnable but not trivial: nearest class-mean beats chance clearly, far from perfect', () => {
    const {train, test: testSet} = generateSynthetic({trainCount: 1000, testCount: 300, seed: 0});
    const acc = nearestMeanAccuracy(train, testSet);
    assert.ok(acc > 0.2 && acc < 0.7, `nearest-mean accuracy ${acc}`);
  });

  test('round-trips through writeCifar10Dir + loadCifar10 (the official binary layout)', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const {train, test: testSet} = generateSynthetic({trainCount: 123, testCount: 45, seed: 9});
    const files = await writeCifar10Dir(dir, train, testSet);
    assert.equal(files.length, 7);
    // 123 train records over 5 files, each a whole number of records.
    const sizes = await Promise.all(files.slice(0, 5).map(async (f) => (await fs.stat(f)).size / 3073));
    assert.deepEqual(sizes, [24, 25, 24, 25, 25]);
    const train2 = await loadCifar10(dir, 'train');
    const test2 = await loadCifar10(dir, 'test');
    assert.deepEqual(train2.images, train.images);
    assert.deepEqual(train2.labels, train.labels);
    assert.deepEqual(test2.images, testSet.images);
    assert.deepEqual(test2.labels, testSet.labels);
    assert.deepEqual([...train2.classNames], [...train.classNames]);
  });

  test('invalid counts are refused', () => {
    assert.throws(() => generateSynthetic({trainCount: -1, testCount: 1, seed: 0}), RangeError);
    assert.throws(() => generateSynthetic({trainCount: 1.5, testCount: 1, seed: 0}), RangeError);
  });
});
