/**
 * The cluster through the built CLI, with real processes: `dtrain run --workers 2` (local coordinator
 * and worker processes), `--resume`, `cluster up --detach` / `run --coordinator` / `cluster down`,
 * Ctrl-C, and no process left behind. Needs dist/ (npm run build).
 */
import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import {existsSync} from 'node:fs';
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {isAlive} from '../../src/util/process.js';
import {runDtrain} from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const built = existsSync(path.join(root, 'dist/commands/run.js')) && existsSync(path.join(root, 'dist/coordinator/server.js'));
const TINY = ['--data', 'synthetic', '--train-limit', '256', '--test-limit', '128', '--batch-size', '32', '--lr', '0.05', '--backend', 'wasm'];

let dir = '';
let env: NodeJS.ProcessEnv = {};

const dtrain = (...args: string[]) => runDtrain(args, {cwd: dir, env});

async function allGone(pids: number[], ms = 5000): Promise<number[]> {
  const deadline = Date.now() + ms;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(isAlive);
}

describe('dtrain cluster (built CLI, real processes)', {skip: built ? false : 'dist/ not built (npm run build)'}, () => {
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dtrain-cluster-'));
    env = {DTRAIN_CLUSTER_DIR: path.join(dir, 'cluster-state'), DTRAIN_CACHE_DIR: path.join(dir, 'cache')};
  });
  after(async () => {
    await dtrain('cluster', 'down');
    await rm(dir, {recursive: true, force: true});
  });

  test('run --workers 2 trains 2 epochs, writes checkpoints and history, stops its cluster; --resume continues at epoch 3', async () => {
    const runDir = path.join(dir, 'run');
    const r = await dtrain('run', '--workers', '2', '--epochs', '2', ...TINY, '--run-dir', runDir, '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.workers, 2);
    assert.equal(out.backend, 'wasm');
    assert.equal(out.size, 0.5);
    assert.equal(out.epochs.length, 2);
    for (const e of out.epochs) for (const k of ['epoch', 'trainLoss', 'trainAcc', 'testLoss', 'testAcc', 'lr', 'imagesPerSec', 'seconds']) assert.equal(typeof e[k], 'number', `${k} in ${JSON.stringify(e)}`);
    assert.equal(out.epochs[0].images, 256);
    assert.equal(Object.keys(out.perClassAcc).length, 10);
    assert.ok(out.testAcc >= 0 && out.testAcc <= 1);
    assert.equal(out.checkpoint, path.join(runDir, 'checkpoint-epoch2.safetensors'));
    for (const f of ['checkpoint-epoch2.safetensors', 'checkpoint-epoch2.optim.safetensors', 'checkpoint-epoch2.json', 'latest.json']) assert.ok(existsSync(path.join(runDir, f)), f);
    const history = (await readFile(path.join(runDir, 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(history.map((h) => h.epoch), [0, 1]);
    for (const k of ['trainLoss', 'trainAccuracy', 'testLoss', 'testAccuracy', 'lr', 'imagesPerSec', 'seconds', 'perClass', 'checkpoint']) assert.ok(k in history[0], k);
    assert.equal(out.localPids.length, 3);
    assert.deepEqual(await allGone(out.localPids), [], 'coordinator and workers must be gone');
    const state = JSON.parse(await readFile(path.join(runDir, 'latest.json'), 'utf8'));
    assert.equal(state.epoch, 2);
    assert.equal(state.scheduler.trainLosses.length, 2);

    const resumed = await dtrain('run', '--workers', '2', '--epochs', '3', ...TINY, '--run-dir', runDir, '--resume', '--json');
    assert.equal(resumed.code, 0, resumed.stderr);
    const again = JSON.parse(resumed.stdout);
    assert.equal(again.startEpoch, 2);
    assert.deepEqual(again.epochs.map((e: {epoch: number}) => e.epoch), [2]);
    assert.ok(existsSync(path.join(runDir, 'checkpoint-epoch3.safetensors')));
    assert.deepEqual(await allGone(again.localPids), []);
  });

  test('cluster up --detach / status / run --coordinator / cluster down, nothing left behind; 3 straight epochs = 2 + --resume 1, bit for bit', async () => {
    const up = await dtrain('cluster', 'up', '--workers', '2', '--detach', '--port', '0', '--backend', 'wasm', '--json');
    assert.equal(up.code, 0, up.stderr);
    const cluster = JSON.parse(up.stdout);
    const pids: number[] = cluster.processes.map((p: {pid: number}) => p.pid);
    assert.equal(pids.length, 3);
    try {
      // The cluster's fresh token: owner-only on disk, in the children's environment, never on their command line.
      const tokenFile = path.join(dir, 'cluster-state', 'token');
      assert.equal((await stat(tokenFile)).mode & 0o777, 0o600);
      const token = (await readFile(tokenFile, 'utf8')).trim();
      assert.ok(token.length >= 32);
      for (const pid of pids) assert.ok(!(await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes(token), `pid ${pid} has the token in argv`);
      const status = await dtrain('cluster', 'status', '--json');
      assert.equal(status.code, 0, status.stderr);
      const s = JSON.parse(status.stdout);
      assert.equal(s.workers.filter((w: {state: string}) => w.state === 'idle').length, 2);
      assert.ok(s.workers.every((w: {backend: string}) => w.backend === 'wasm'));
      const r = await dtrain('run', '--coordinator', cluster.address, '--workers', '2', '--epochs', '3', ...TINY, '--run-dir', path.join(dir, 'run-c'), '--json');
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.epochs.length, 3);
      assert.ok(out.testAcc > 0.2, `test accuracy ${out.testAcc} should beat chance (0.1) clearly`);
      // The first test trained 2 epochs then resumed for the 3rd: the same weights, bit for bit.
      const resumed = path.join(dir, 'run', 'checkpoint-epoch3.safetensors');
      if (existsSync(resumed)) assert.ok((await readFile(resumed)).equals(await readFile(path.join(dir, 'run-c', 'checkpoint-epoch3.safetensors'))), 'resumed and uninterrupted runs must agree');
      assert.deepEqual(out.localPids, []);
      assert.ok(pids.every(isAlive), 'the standing cluster outlives the job');
      const after = JSON.parse((await dtrain('cluster', 'status', '--json')).stdout);
      assert.equal(after.jobs[0].state, 'completed');
      // a job larger than the cluster fails with a clear message instead of hanging forever
    } finally {
      const down = await dtrain('cluster', 'down');
      assert.equal(down.code, 0, down.stderr);
    }
    assert.deepEqual(await allGone(pids), []);
    assert.ok(!existsSync(path.join(dir, 'cluster-state', 'cluster.json')));
    assert.ok(!existsSync(path.join(dir, 'cluster-state', 'token')));
  });

  test('run --workers 2 --grad-compression fp16: the job tells both workers, history and --json record it; with one worker it is a usage error', async () => {
    const runDir = path.join(dir, 'run-fp16');
    const small = ['--data', 'synthetic', '--train-limit', '64', '--test-limit', '32', '--batch-size', '32', '--backend', 'wasm'];
    const r = await dtrain('run', '--workers', '2', '--grad-compression', 'fp16', '--epochs', '1', ...small, '--run-dir', runDir, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).gradCompression, 'fp16');
    const history = JSON.parse((await readFile(path.join(runDir, 'history.jsonl'), 'utf8')).trim());
    assert.equal(history.gradCompression, 'fp16');
    for (const i of [0, 1]) assert.match(await readFile(path.join(runDir, 'cluster-logs', `worker-${i}.log`), 'utf8'), /rank \d\/2, ring inbox \S+ \(CURVE\), gradients as fp16/);
    const one = await dtrain('run', '--grad-compression', 'fp16', ...small, '--run-dir', path.join(dir, 'run-fp16-1'));
    assert.equal(one.code, 2);
    assert.match(one.stderr, /^Error: --grad-compression fp16 needs --workers 2 or more: with one worker no gradient travels\n/);
  });

  test('Ctrl-C during run --workers 2 stops the coordinator and the workers', async () => {
    const child = spawn(process.execPath, [path.join(root, 'bin/run.js'), 'run', '--workers', '2', '--epochs', '5', ...TINY, '--run-dir', path.join(dir, 'run-int')], {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']});
    let stderr = '';
    const pids = await new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no training step within 60 s: ${stderr}`)), 60_000);
      let found: number[] | undefined;
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        found ??= /pids ([\d, ]+);/.exec(stderr)?.[1].split(', ').map(Number);
        if (found && /epoch 1 \[/.test(stderr)) {
          clearTimeout(timer);
          resolve(found);
        }
      });
    });
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (c) => resolve(c));
      child.kill('SIGINT');
    });
    assert.notEqual(code, 0);
    assert.equal(pids.length, 3);
    assert.deepEqual(await allGone(pids, 15_000), [], 'every process of the local cluster exits after Ctrl-C');
  });
  test('a local worker that refuses the machine (--require-backend) fails the run at once with its reason, nothing left behind', async () => {
    const started = Date.now();
    const {code, stderr} = await dtrain('run', '--workers', '2', ...TINY, '--epochs', '1', '--require-backend', 'tensorflow', '--run-dir', path.join(dir, 'refused'));
    assert.equal(code, 1);
    assert.match(stderr, /local worker \(pid \d+\) exited: Error: --require-backend tensorflow, but this process runs backend wasm/);
    assert.ok(Date.now() - started < 60_000, 'no wait for the coordinator\'s worker timeout');
    const pids = [...stderr.matchAll(/pids ([\d, ]+);/g)].flatMap((m) => m[1].split(', ').map(Number));
    assert.equal(pids.length, 3);
    assert.deepEqual(await allGone(pids), []);
  });
  test('cluster up --prometheus without the prometheus binary: one line saying how to install it, nothing started', async () => {
    const {code, stderr} = await runDtrain(['cluster', 'up', '--workers', '1', '--detach', '--prometheus'], {cwd: dir, env: {...env, PATH: '/nonexistent'}});
    assert.equal(code, 2);
    assert.match(stderr, /--prometheus: the `prometheus` binary is not on PATH; nothing was started/);
    assert.match(stderr, /apt-get install prometheus/);
    assert.equal(existsSync(path.join(env.DTRAIN_CLUSTER_DIR ?? '', 'cluster.json')), false);
  });
  test('an unreachable coordinator is one line naming the socket error, exit 4', async () => {
    const {code, stderr} = await dtrain('cluster', 'status', '--coordinator', '127.0.0.1:1');
    assert.equal(code, 4);
    assert.equal(stderr.trim().split('\n')[0], 'Error: cannot reach the coordinator at 127.0.0.1:1: ECONNREFUSED 127.0.0.1:1');
  });
});
