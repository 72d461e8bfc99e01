import assert from 'node:assert/strict';
import {createHash} from 'node:crypto';
import {promises as fs} from 'node:fs';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {ExitCode, UserError} from '../../src/cli/errors.js';
import {
  CIFAR10_CLASSES,
  CIFAR10_SUBDIR,
  classCounts,
  decodeRecords,
  encodeRecords,
  loadCifar10,
  RECORD_BYTES,
  validateCifar10Dir,
} from '../../src/data/index.js';
import {md5File} from '../../src/data/checksum.js';
import {extractedFixture, FIXTURE, FIXTURE_MD5, tempDir} from './helpers.js';

/** A copy of the fixture's batch folder that a test may damage. */
async function copyOfBatches(src: string): Promise<string> {
  const dir = await tempDir();
  await fs.cp(path.join(src, CIFAR10_SUBDIR), path.join(dir, CIFAR10_SUBDIR), {recursive: true});
  return dir;
}

function isDataError(file: string, words: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.equal(error.exitCode, ExitCode.data);
    assert.ok(error.message.includes(file), `message should name ${file}: ${error.message}`);
    assert.match(error.message, words);
    assert.ok(error.suggestion && /dtrain data download|synthetic/.test(error.suggestion), `suggestion should say what to do: ${error.suggestion}`);
    return true;
  };
}

describe('CIFAR-10 binary reader on real photos', () => {
  let root: string;
  const scratch: string[] = [];
  before(async () => {
    root = await extractedFixture();
  });
  after(async () => {
    for (const d of [root, ...scratch]) await fs.rm(d, {recursive: true, force: true});
  });

  test('the fixture is the one the docs name', async () => {
    assert.equal(await md5File(FIXTURE), FIXTURE_MD5);
  });

  test('train: 5,000 images in file order, labels 0-9, class names from batches.meta.txt', async () => {
    const ds = await loadCifar10(root, 'train');
    assert.equal(ds.count, 5000);
    assert.equal(ds.images.length, 5000 * 3072);
    assert.equal(ds.labels.length, 5000);
    assert.deepEqual([...ds.classNames], [...CIFAR10_CLASSES]);
    assert.equal(classCounts(ds).reduce((a, b) => a + b, 0), 5000);
    // Record 0 of data_batch_1 and record 0 of data_batch_2 (image 1000) are where the format puts them.
    const raw1 = await fs.readFile(path.join(root, CIFAR10_SUBDIR, 'data_batch_1.bin'));
    const raw2 = await fs.readFile(path.join(root, CIFAR10_SUBDIR, 'data_batch_2.bin'));
    assert.equal(ds.labels[0], raw1[0]);
    assert.deepEqual(ds.images.subarray(0, 3072), new Uint8Array(raw1.subarray(1, RECORD_BYTES)));
    assert.equal(ds.labels[1000], raw2[0]);
    assert.deepEqual(ds.images.subarray(1000 * 3072, 1001 * 3072), new Uint8Array(raw2.subarray(1, RECORD_BYTES)));
  });

  test('test: 1,000 images, exactly 100 per class; real photos have the official channel means', async () => {
    const ds = await loadCifar10(root, 'test');
    assert.equal(ds.count, 1000);
    assert.deepEqual(classCounts(ds), new Array(10).fill(100));
    // CIFAR-10 channel means ≈ 0.49, 0.48, 0.45 (of 255): proves R, G, B planes are where we think.
    const means = [0, 1, 2].map((c) => {
      let s = 0;
      for (let k = 0; k < ds.count; k++) for (let p = 0; p < 1024; p++) s += ds.images[k * 3072 + c * 1024 + p];
      return s / (ds.count * 1024 * 255);
    });
    assert.ok(Math.abs(means[0] - 0.49) < 0.03 && Math.abs(means[1] - 0.48) < 0.03 && Math.abs(means[2] - 0.45) < 0.03, `channel means ${means}`);
  });

  test('accepts the batches folder itself and a limit (first N, across files)', async () => {
    const full = await loadCifar10(root, 'train');
    const some = await loadCifar10(path.join(root, CIFAR10_SUBDIR), 'train', 1500);
    assert.equal(some.count, 1500);
    assert.deepEqual(some.labels, full.labels.subarray(0, 1500));
    assert.deepEqual(some.images, full.images.subarray(0, 1500 * 3072));
    assert.equal((await loadCifar10(root, 'test', 5000)).count, 1000, 'a limit above the size keeps everything');
    await assert.rejects(loadCifar10(root, 'test', 0), UserError);
    await assert.rejects(loadCifar10(root, 'test', 2.5), UserError);
  });

  test('a truncated file is an error naming the file', async () => {
    const dir = await copyOfBatches(root);
    scratch.push(dir);
    const file = path.join(dir, CIFAR10_SUBDIR, 'data_batch_3.bin');
    await fs.truncate(file, 1000 * RECORD_BYTES - 1234);
    await assert.rejects(loadCifar10(dir, 'train'), isDataError(file, /not a whole number of 3073-byte records/));
    // Even when a limit would not read that far: a broken cache is reported, not half-used.
    await assert.rejects(loadCifar10(dir, 'train', 10), isDataError(file, /truncated/));
    await assert.rejects(validateCifar10Dir(dir), isDataError(file, /3073/));
  });

  test('a file of the wrong size (extra bytes) is an error naming the file', async () => {
    const dir = await copyOfBatches(root);
    scratch.push(dir);
    const file = path.join(dir, CIFAR10_SUBDIR, 'test_batch.bin');
    await fs.appendFile(file, Buffer.alloc(100));
    await assert.rejects(loadCifar10(dir, 'test'), isDataError(file, /3073100 bytes/));
  });

  test('a missing file is an error naming it', async () => {
    const dir = await copyOfBatches(root);
    scratch.push(dir);
    const file = path.join(dir, CIFAR10_SUBDIR, 'data_batch_5.bin');
    await fs.rm(file);
    await assert.rejects(loadCifar10(dir, 'train'), isDataError(file, /missing/));
  });

  test('a label above 9 is an error naming the file and the record', async () => {
    const dir = await copyOfBatches(root);
    scratch.push(dir);
    const file = path.join(dir, CIFAR10_SUBDIR, 'test_batch.bin');
    const bytes = await fs.readFile(file);
    bytes[7 * RECORD_BYTES] = 10;
    await fs.writeFile(file, bytes);
    await assert.rejects(loadCifar10(dir, 'test'), isDataError(file, /record 7 has label 10/));
    await assert.rejects(validateCifar10Dir(dir), isDataError(file, /record 7/));
  });

  test('no dataset at all: says to download or use synthetic', async () => {
    const dir = await tempDir();
    scratch.push(dir);
    await assert.rejects(loadCifar10(dir, 'train'), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.exitCode, ExitCode.data);
      assert.match(error.suggestion ?? '', /dtrain data download/);
      assert.match(error.suggestion ?? '', /--data synthetic/);
      return true;
    });
  });

  test('encodeRecords ∘ decodeRecords is the identity on the file bytes', async () => {
    const file = path.join(root, CIFAR10_SUBDIR, 'test_batch.bin');
    const bytes = new Uint8Array(await fs.readFile(file));
    const {images, labels, count} = decodeRecords(bytes, file);
    const encoded = encodeRecords({name: 't', count, images, labels, classNames: CIFAR10_CLASSES});
    assert.equal(createHash('md5').update(encoded).digest('hex'), createHash('md5').update(bytes).digest('hex'));
  });
});
