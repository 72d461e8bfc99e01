import assert from 'node:assert/strict';
import {promises as fs} from 'node:fs';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {ExitCode, UserError} from '../../src/cli/errors.js';
import {classCounts, datasetDigest, defaultDataDir, generateSynthetic, resolveDataset} from '../../src/data/index.js';
import {extractedFixture, tempDir} from './helpers.js';

describe('resolveDataset', () => {
  let root: string;
  const dirs: string[] = [];
  before(async () => {
    root = await extractedFixture();
  });
  after(async () => {
    for (const d of [root, ...dirs]) await fs.rm(d, {recursive: true, force: true});
  });

  test('synthetic: defaults 5,000 / 1,000, balanced, same as generateSynthetic', async () => {
    const r = await resolveDataset({data: 'synthetic'});
    assert.equal(r.train.count, 5000);
    assert.equal(r.test.count, 1000);
    assert.deepEqual(classCounts(r.test), new Array(10).fill(100));
    assert.match(r.source, /synthetic \(seed 0\)/);
    const g = generateSynthetic({trainCount: 5000, testCount: 1000, seed: 0});
    assert.equal(datasetDigest(r.train), datasetDigest(g.train));
  });

  test('synthetic: limits and seed apply', async () => {
    const r = await resolveDataset({data: 'synthetic', trainLimit: 100, testLimit: 20, seed: 3});
    assert.equal(r.train.count, 100);
    assert.equal(r.test.count, 20);
    assert.equal(datasetDigest(r.train), datasetDigest(generateSynthetic({trainCount: 100, testCount: 0, seed: 3}).train));
  });

  test('cifar10 from a dir, with limits', async () => {
    const r = await resolveDataset({data: 'cifar10', dir: root, trainLimit: 2500, testLimit: 300});
    assert.equal(r.train.count, 2500);
    assert.equal(r.test.count, 300);
    assert.match(r.source, /^cifar10 \(/);
    const all = await resolveDataset({data: 'cifar10', dir: root});
    assert.equal(all.train.count, 5000);
    assert.equal(all.test.count, 1000);
  });

  test('cifar10 missing → UserError saying to run dtrain data download or use --data synthetic', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    await assert.rejects(resolveDataset({data: 'cifar10', dir: path.join(dir, 'nothing')}), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.exitCode, ExitCode.data);
      assert.match(error.suggestion ?? '', /dtrain data download/);
      assert.match(error.suggestion ?? '', /--data synthetic/);
      return true;
    });
  });

  test('limits must be positive integers', async () => {
    for (const bad of [0, -5, 2.5, Number.NaN]) {
      await assert.rejects(resolveDataset({data: 'synthetic', trainLimit: bad}), UserError, `trainLimit ${bad}`);
      await assert.rejects(resolveDataset({data: 'cifar10', dir: root, testLimit: bad}), UserError, `testLimit ${bad}`);
    }
  });

  test('defaultDataDir: $DTRAIN_DATA_DIR, else ~/.cache/dtrain/cifar10', () => {
    const saved = process.env.DTRAIN_DATA_DIR;
    try {
      process.env.DTRAIN_DATA_DIR = '/srv/data/cifar';
      assert.equal(defaultDataDir(), '/srv/data/cifar');
      delete process.env.DTRAIN_DATA_DIR;
      assert.match(defaultDataDir(), /[/\\]\.cache[/\\]dtrain[/\\]cifar10$/);
    } finally {
      if (saved === undefined) delete process.env.DTRAIN_DATA_DIR;
      else process.env.DTRAIN_DATA_DIR = saved;
    }
  });
});
