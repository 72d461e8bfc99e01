/**
 * Failures through the built CLI, real processes: a coordinator SIGKILLed during epoch 2 (its workers
 * exit on their own, `--resume` then ends bit for bit where an uninterrupted run ends), a NaN loss
 * (huge --lr) that keeps the last good checkpoint, and a disk that fills up while checkpointing (a
 * real tmpfs, where mounting is permitted). Needs dist/ (npm run build).
 */
import assert from 'node:assert/strict';
import {type ChildProcess, execFileSync, spawn} from 'node:child_process';
import {createHash} from 'node:crypto';
import {existsSync, readFileSync} from 'node:fs';
import {mkdir, mkdtemp, readdir, readFile, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {isAlive} from '../../src/util/process.js';
import {runDtrain} from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const built = existsSync(path.join(root, 'dist/commands/run.js'));
// 64 images, batch 16: 4 steps per epoch, so a kill lands inside epoch 2.
const TINY = ['--data', 'synthetic', '--train-limit', '64', '--test-limit', '32', '--batch-size', '16', '--backend', 'wasm'];
const EPOCH_FILES = ['checkpoint-epoch1.safetensors', 'checkpoint-epoch1.optim.safetensors', 'checkpoint-epoch1.json', 'latest.json'];

let dir = '';
let env: NodeJS.ProcessEnv = {};
const dtrain = (...args: string[]) => runDtrain(args, {cwd: dir, env});
const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');
const hashes = (d: string, files: string[]) => Promise.all(files.map((f) => sha256(path.join(d, f))));

/** Still running: a zombie has exited (here PID 1 may reap detached children a second or two late). */
function alive(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return process.platform !== 'linux';
  }
}

/** `dtrain run ARGS` as a child, resolved once epoch 2's progress line appears on its stderr. */
async function runUntilEpoch2(args: string[]): Promise<{child: ChildProcess; stderr: () => string; exited: Promise<number | null>}> {
  const child = spawn(process.execPath, [path.join(root, 'bin/run.js'), 'run', ...args], {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'ignore', 'pipe']});
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`epoch 2 did not start within 120 s: ${stderr}`)), 120_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/epoch 2 \[/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {child, stderr: () => stderr, exited};
}

/** Milliseconds until every pid has exited (or the deadline passed: then the survivors stay alive for the assertion). */
async function waitGone(pids: number[], ms: number): Promise<number> {
  const started = performance.now();
  while (pids.some(alive) && performance.now() - started < ms) await new Promise((r) => setTimeout(r, 10));
  return performance.now() - started;
}

describe('recovery (built CLI, real processes)', {skip: built ? false : 'dist/ not built (npm run build)'}, () => {
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dtrain-recovery-'));
    env = {DTRAIN_CLUSTER_DIR: path.join(dir, 'cluster-state'), DTRAIN_CACHE_DIR: path.join(dir, 'cache')};
  });
  after(async () => {
    await dtrain('cluster', 'down');
    await rm(dir, {recursive: true, force: true});
  });

  const job = ['--workers', '2', '--epochs', '2', '--seed', '7', '--lr', '0.05', ...TINY];
  const straightDir = () => path.join(dir, 'straight');
  const epoch2 = ['checkpoint-epoch2.safetensors', 'checkpoint-epoch2.optim.safetensors'];
  /** Epoch 2 of a run without --json from its history.jsonl, timings and paths blanked. */
  const epoch2Metrics = async (runDir: string) => {
    const history = (await readFile(path.join(runDir, 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    return {...history.find((h) => h.epoch === 1), seconds: 0, imagesPerSec: 0, allreduceSeconds: 0, checkpoint: ''};
  };

  test('coordinator SIGKILLed in epoch 2: workers exit on their own, run says so (exit 4); --resume = the uninterrupted run, bit for bit', async () => {
    const straight = await dtrain('run', ...job, '--checkpoint-dir', straightDir(), '--run-dir', straightDir(), '--json');
    assert.equal(straight.code, 0, straight.stderr);

    const up = await dtrain('cluster', 'up', '--workers', '2', '--detach', '--port', '0', '--metrics-port', '0', '--backend', 'wasm', '--json');
    assert.equal(up.code, 0, up.stderr);
    const cluster = JSON.parse(up.stdout) as {address: string; processes: Array<{role: string; pid: number}>};
    const coordinator = cluster.processes.find((p) => p.role === 'coordinator')!.pid;
    const workers = cluster.processes.filter((p) => p.role === 'worker').map((p) => p.pid);
    const crashedDir = path.join(dir, 'crashed');
    const crashed = await runUntilEpoch2([...job, '--coordinator', cluster.address, '--checkpoint-dir', crashedDir, '--run-dir', path.join(dir, 'crashed-run')]);
    process.kill(coordinator, 'SIGKILL');
    const workersGoneMs = await waitGone(workers, 15_000);
    assert.deepEqual(workers.filter(alive), [], 'workers must exit when their coordinator dies');
    const code = await crashed.exited;
    const stderr = crashed.stderr();
    if (process.env.DTRAIN_RECOVERY_MEASURE) process.stderr.write(`workers exited ${workersGoneMs.toFixed(0)} ms after the coordinator's SIGKILL\n`);
    assert.ok(workersGoneMs < 10_000, `workers took ${workersGoneMs} ms to notice the dead coordinator`);
    assert.equal(code, 4, stderr);
    assert.match(stderr, new RegExp(`lost the coordinator at ${cluster.address} during epoch 2: .*; the checkpoints of finished epochs are in ${crashedDir} on the coordinator's machine`));
    assert.match(stderr, /restart the coordinator, then rerun the same command with --resume/);
    assert.deepEqual((await readdir(crashedDir)).sort(), EPOCH_FILES.slice().sort(), 'only epoch 1 was checkpointed, nothing torn');
    assert.equal((await dtrain('cluster', 'down')).code, 0);

    const resumed = await dtrain('run', ...job, '--checkpoint-dir', crashedDir, '--run-dir', path.join(dir, 'resumed-run'), '--resume', '--json');
    assert.equal(resumed.code, 0, resumed.stderr);
    const a = JSON.parse(straight.stdout);
    const b = JSON.parse(resumed.stdout);
    assert.equal(b.startEpoch, 1);
    assert.deepEqual(await hashes(crashedDir, epoch2), await hashes(straightDir(), epoch2), 'weights and momentum after epoch 2');
    const metrics = (e: Record<string, unknown>) => ({...e, seconds: 0, imagesPerSec: 0, allreduceSeconds: 0, checkpoint: ''});
    assert.deepEqual(metrics(b.epochs[0]), metrics(a.epochs[1]), 'epoch 2 metrics');
    const local = [...a.localPids, ...b.localPids];
    await waitGone(local, 5000);
    assert.deepEqual(local.filter(alive), [], 'no process of the local clusters is left');
  });

  test('dtrain run (with its local cluster) SIGKILLed in epoch 2: coordinator and workers exit with it; --resume = the uninterrupted run', async () => {
    const killedDir = path.join(dir, 'killed');
    const killed = await runUntilEpoch2([...job, '--checkpoint-dir', killedDir, '--run-dir', killedDir]);
    const pids = /pids ([\d, ]+);/.exec(killed.stderr())![1].split(', ').map(Number);
    assert.equal(pids.length, 3);
    killed.child.kill('SIGKILL');
    await killed.exited;
    const goneMs = await waitGone(pids, 15_000);
    assert.deepEqual(pids.filter(alive), [], 'the local coordinator and workers must exit with dtrain run');
    if (process.env.DTRAIN_RECOVERY_MEASURE) process.stderr.write(`local cluster exited ${goneMs.toFixed(0)} ms after dtrain run's SIGKILL\n`);
    assert.deepEqual((await readdir(killedDir)).filter((f) => f.startsWith('checkpoint-') || f === 'latest.json').sort(), EPOCH_FILES.slice().sort());
    const resumed = await dtrain('run', ...job, '--checkpoint-dir', killedDir, '--run-dir', killedDir, '--resume');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming at epoch 2/);
    assert.deepEqual(await hashes(killedDir, epoch2), await hashes(straightDir(), epoch2), 'weights and momentum after epoch 2');
    assert.deepEqual(await epoch2Metrics(killedDir), await epoch2Metrics(straightDir()), 'epoch 2 metrics');
  });

  test('NaN loss (--lr 1e30 after a good epoch): one line with epoch, step, global step, the kept checkpoint and a hint; nothing overwritten', async () => {
    const ckpt = path.join(dir, 'nan');
    const first = await dtrain('run', '--workers', '1', '--epochs', '1', '--lr', '0.05', ...TINY, '--checkpoint-dir', ckpt, '--run-dir', ckpt);
    assert.equal(first.code, 0, first.stderr);
    const before = await hashes(ckpt, EPOCH_FILES);
    const {code, stderr} = await dtrain('run', '--workers', '1', '--epochs', '2', ...TINY, '--lr', '1e30', '--checkpoint-dir', ckpt, '--run-dir', ckpt, '--resume');
    assert.equal(code, 1, stderr);
    const line = stderr.trim().split('\n').filter((l) => l.startsWith('Error:'));
    assert.equal(line.length, 1, stderr);
    assert.match(
      line[0],
      new RegExp(`^Error: job failed: training diverged: the loss is (NaN|-?Infinity) at epoch 2, step [1-4]/4 \\(global step [5-8]\\) on rank 0; the last good checkpoint ${path.join(ckpt, 'checkpoint-epoch1.safetensors')} is kept \\(nothing was overwritten\\); lower --lr \\(this epoch trained with 1e\\+30\\) and rerun with --resume$`),
    );
    assert.deepEqual(await hashes(ckpt, EPOCH_FILES), before);
    assert.ok(!existsSync(path.join(ckpt, 'checkpoint-epoch2.safetensors')));
  });

  test('NaN loss in the single-process path: the same one line (no rank), no checkpoint written', async () => {
    const runDir = path.join(dir, 'nan-local');
    const {code, stderr} = await dtrain('run', '--epochs', '1', '--lr', '1e30', '--data', 'synthetic', '--train-limit', '32', '--test-limit', '32', '--batch-size', '16', '--backend', 'wasm', '--run-dir', runDir);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^Error: training diverged: the loss is (NaN|-?Infinity) at epoch 1, step [12]\/2 \(global step [12]\); no checkpoint of this run was written yet; lower --lr \(this epoch trained with 1e\+30\) and rerun$/m);
    assert.ok(!existsSync(path.join(runDir, 'checkpoint-epoch1.safetensors')));
  });

  test('--keep-checkpoints below 1 is a usage error (exit 2), nothing started', async () => {
    const {code, stderr} = await dtrain('run', '--workers', '2', '--keep-checkpoints', '0', ...TINY, '--run-dir', path.join(dir, 'keep0'));
    assert.equal(code, 2, stderr);
    assert.equal(stderr.trim().split('\n')[0], 'Error: --keep-checkpoints must be at least 1, got 0');
    assert.ok(!existsSync(path.join(dir, 'keep0')));
  });

  test('disk full while checkpointing epoch 2 (a 4 MiB tmpfs): one line, non-zero exit, epoch 1 untouched, no temp files', async (t) => {
    const ckpt = path.join(dir, 'full');
    await mkdir(ckpt, {recursive: true});
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', ckpt], {stdio: 'pipe'});
    } catch (err) {
      t.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); test/cluster/checkpoint.test.ts covers the writer`);
      return;
    }
    try {
      // One epoch's files are ~2.9 MB (size 0.5 weights + momentum): epoch 1 fits, epoch 2 does not.
      const {code, stderr} = await dtrain('run', '--workers', '1', '--epochs', '2', '--lr', '0.05', ...TINY, '--checkpoint-dir', ckpt, '--run-dir', path.join(dir, 'full-run'));
      assert.equal(code, 1, stderr);
      assert.match(stderr, new RegExp(`^Error: job failed: cannot write checkpoint for epoch 2 to ${ckpt}: no space left on device; the last good checkpoint is ${path.join(ckpt, 'checkpoint-epoch1.safetensors')}; free space and rerun with --resume$`, 'm'));
      assert.deepEqual((await readdir(ckpt)).sort(), EPOCH_FILES.slice().sort());
      assert.equal(JSON.parse(await readFile(path.join(ckpt, 'latest.json'), 'utf8')).epoch, 1);
    } finally {
      execFileSync('umount', [ckpt]);
    }
  });
});
