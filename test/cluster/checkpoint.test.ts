/**
 * The coordinator's checkpoint files on a real file system: hashes recorded and verified, a damaged
 * checkpoint refused for the previous epoch, keep-K pruning, and a full disk (a real 64 KiB tmpfs,
 * where mounting is permitted) that leaves the previous checkpoints untouched.
 */
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {after, before, test} from 'node:test';

import {UserError} from '../../src/cli/errors.js';
import {type CheckpointContent, readLatestCheckpoint, verifyRecordedWeights, writeCheckpoint} from '../../src/coordinator/checkpoint.js';

let root = '';
before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'dtrain-ckpt-'));
});
after(async () => {
  await rm(root, {recursive: true, force: true});
});

function content(epoch: number): CheckpointContent {
  return {
    epoch,
    epochs: 10,
    size: '0.5',
    seed: 1,
    hyper: {globalBatch: 16, lr: 0.1, momentum: 0.9, weightDecay: 5e-4},
    scheduler: {name: 'plateau', state: {}, nextLr: 0.1, trainLosses: Array.from({length: epoch}, (_, i) => 2 - i / 10)},
    dataOrder: {sampler: 'distributed', seed: 1, workers: 2, nextEpoch: epoch, datasetHash: 'ab'.repeat(32)},
  };
}

/** Distinct bytes per epoch and file, so a wrong file is noticed. */
const bytes = (epoch: number, kind: number, n = 4096) => Uint8Array.from({length: n}, (_, i) => (i * 7 + epoch * 31 + kind) & 255);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function writeEpochs(dir: string, epochs: number[], keep: number): Promise<string[]> {
  const pruned: string[] = [];
  for (const e of epochs) pruned.push(...(await writeCheckpoint(dir, content(e), bytes(e, 0), bytes(e, 1), {keep})).pruned);
  return pruned;
}

test('write: lengths and hashes recorded, latest.json = the newest, no temp files; keep 2 deletes epoch 1 only', async () => {
  const dir = path.join(root, 'keep');
  const pruned = await writeEpochs(dir, [1, 2, 3], 2);
  assert.deepEqual(pruned.map((p) => path.basename(p)).sort(), ['checkpoint-epoch1.json', 'checkpoint-epoch1.optim.safetensors', 'checkpoint-epoch1.safetensors']);
  assert.deepEqual((await readdir(dir)).sort(), [
    'checkpoint-epoch2.json',
    'checkpoint-epoch2.optim.safetensors',
    'checkpoint-epoch2.safetensors',
    'checkpoint-epoch3.json',
    'checkpoint-epoch3.optim.safetensors',
    'checkpoint-epoch3.safetensors',
    'latest.json',
  ]);
  const latest = JSON.parse(await readFile(path.join(dir, 'latest.json'), 'utf8'));
  assert.equal(latest.epoch, 3);
  assert.equal(latest.version, 2);
  assert.deepEqual(latest.files, {weights: {bytes: 4096, sha256: sha(bytes(3, 0))}, optimizer: {bytes: 4096, sha256: sha(bytes(3, 1))}});
  const logs: string[] = [];
  const loaded = await readLatestCheckpoint(dir, (l) => logs.push(l));
  assert.equal(loaded?.state.epoch, 3);
  assert.ok(loaded?.weights.equals(bytes(3, 0)));
  assert.ok(loaded?.optimizer.equals(bytes(3, 1)));
  assert.deepEqual(logs, []);
});

test('a stale temp file of a dead writer is removed by the next write; keep 1 keeps only the newest', async () => {
  const dir = path.join(root, 'stale');
  await mkdir(dir, {recursive: true});
  await writeFile(path.join(dir, '.checkpoint-epoch2.safetensors.999999.tmp'), 'torn');
  await writeEpochs(dir, [1, 2], 1);
  assert.deepEqual((await readdir(dir)).sort(), ['checkpoint-epoch2.json', 'checkpoint-epoch2.optim.safetensors', 'checkpoint-epoch2.safetensors', 'latest.json']);
});

test('read: a truncated newest checkpoint is refused (named, with why) and the previous epoch used; all damaged → one error, exit 5', async () => {
  const dir = path.join(root, 'damaged');
  await writeEpochs(dir, [1, 2, 3], 3);
  await truncate(path.join(dir, 'checkpoint-epoch3.safetensors'), 1000);
  const logs: string[] = [];
  const loaded = await readLatestCheckpoint(dir, (l) => logs.push(l));
  assert.equal(loaded?.state.epoch, 2);
  assert.ok(loaded?.weights.equals(bytes(2, 0)));
  assert.equal(logs.length, 3, logs.join('\n'));
  assert.match(logs[0], /latest\.json refused: checkpoint-epoch3\.safetensors is 1000 bytes, the checkpoint records 4096 \(truncated or overwritten\)/);
  assert.match(logs[1], /checkpoint-epoch3\.json refused: checkpoint-epoch3\.safetensors is 1000 bytes/);
  assert.match(logs[2], /using .*checkpoint-epoch2\.json \(epoch 2\) instead/);

  // Same length, one byte flipped: the hash catches it.
  const optim = path.join(dir, 'checkpoint-epoch2.optim.safetensors');
  const flipped = Buffer.from(await readFile(optim));
  flipped[100] ^= 1;
  await writeFile(optim, flipped);
  await writeFile(path.join(dir, 'checkpoint-epoch1.json'), '{"format": "dtrain-cluster-checkpoint", "epo');
  const error = await readLatestCheckpoint(dir, () => {}).then(
    () => assert.fail('expected no valid checkpoint'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof UserError);
  assert.equal(error.exitCode, 5);
  assert.match(error.message, /^no valid checkpoint in .*damaged: latest\.json: .*truncated.*; checkpoint-epoch2\.json: checkpoint-epoch2\.optim\.safetensors has sha256 \w+…, the checkpoint records \w+… \(corrupted\); checkpoint-epoch1\.json: unparsable JSON/);
  assert.doesNotMatch(error.message, /\n/);
});

test('read: unparsable latest.json → the newest checkpoint-epochN.json; a missing file is named; no checkpoint at all → undefined', async () => {
  const dir = path.join(root, 'badjson');
  await writeEpochs(dir, [1, 2], 3);
  await writeFile(path.join(dir, 'latest.json'), '{');
  await rm(path.join(dir, 'checkpoint-epoch2.optim.safetensors'));
  const logs: string[] = [];
  const loaded = await readLatestCheckpoint(dir, (l) => logs.push(l));
  assert.equal(loaded?.state.epoch, 1);
  assert.match(logs[0], /latest\.json refused: unparsable JSON/);
  assert.match(logs[1], /checkpoint-epoch2\.json refused: cannot read checkpoint-epoch2\.optim\.safetensors: missing/);
  assert.equal(await readLatestCheckpoint(path.join(root, 'absent'), () => {}), undefined);
});

test('eval/predict path: a weights file that no longer matches its recorded hash is refused; an intact or unrecorded one passes', async () => {
  const dir = path.join(root, 'eval');
  await writeEpochs(dir, [1], 3);
  const weights = path.join(dir, 'checkpoint-epoch1.safetensors');
  await verifyRecordedWeights(weights);
  const copy = path.join(root, 'checkpoint-epoch1.safetensors');
  await writeFile(copy, 'no record beside this copy');
  await verifyRecordedWeights(copy);
  const damaged = Buffer.from(await readFile(weights));
  damaged[0] ^= 0xff;
  await writeFile(weights, damaged);
  await assert.rejects(verifyRecordedWeights(weights), (e: UserError) => e.exitCode === 5 && /checkpoint-epoch1\.safetensors is damaged: .* \(corrupted\)/.test(e.message));
});

/** A real size-limited file system where the platform lets this process mount one (root on Linux). */
function mountTinyTmpfs(dir: string, size: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], {stdio: 'pipe'});
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]})`;
  }
}

test('disk full (a 64 KiB tmpfs): one line naming epoch, dir, ENOSPC and the last good checkpoint; temp files removed, epoch 1 untouched', async (t) => {
  const dir = path.join(root, 'full');
  await mkdir(dir, {recursive: true});
  const skip = process.platform === 'linux' ? mountTinyTmpfs(dir, '64k') : 'tmpfs needs Linux';
  if (skip) {
    t.skip(skip);
    return;
  }
  try {
    await writeCheckpoint(dir, content(1), bytes(1, 0, 16_384), bytes(1, 1, 16_384), {keep: 3});
    const before = await Promise.all(['checkpoint-epoch1.safetensors', 'checkpoint-epoch1.optim.safetensors', 'checkpoint-epoch1.json', 'latest.json'].map((f) => readFile(path.join(dir, f))));
    const lastGood = path.join(dir, 'checkpoint-epoch1.safetensors');
    await assert.rejects(writeCheckpoint(dir, content(2), bytes(2, 0, 40_000), bytes(2, 1, 40_000), {keep: 3, lastGood}), (e: UserError) => {
      assert.equal(e.message, `cannot write checkpoint for epoch 2 to ${dir}: no space left on device; the last good checkpoint is ${lastGood}; free space and rerun with --resume`);
      assert.equal(e.exitCode, 5);
      return true;
    });
    assert.deepEqual((await readdir(dir)).sort(), ['checkpoint-epoch1.json', 'checkpoint-epoch1.optim.safetensors', 'checkpoint-epoch1.safetensors', 'latest.json']);
    const after = await Promise.all(['checkpoint-epoch1.safetensors', 'checkpoint-epoch1.optim.safetensors', 'checkpoint-epoch1.json', 'latest.json'].map((f) => readFile(path.join(dir, f))));
    after.forEach((b, i) => assert.ok(b.equals(before[i])));
    assert.equal((await readLatestCheckpoint(dir, () => {}))?.state.epoch, 1);
  } finally {
    execFileSync('umount', [dir]);
  }
});
