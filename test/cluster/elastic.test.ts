/**
 * Elastic jobs with real processes (built CLI): a worker SIGKILLed or SIGSTOPped mid-epoch, the job
 * continuing with the others; --min-workers pausing for a new worker, and failing after
 * --rejoin-timeout. Needs dist/ (npm run build).
 */
import assert from 'node:assert/strict';
import {type ChildProcess, spawn} from 'node:child_process';
import {existsSync, openSync} from 'node:fs';
import {mkdtemp, readFile, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {parseSafetensors} from '../../src/model/safetensors.js';
import {isAlive} from '../../src/util/process.js';
import {runDtrain} from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(root, 'bin/run.js');
const built = existsSync(path.join(root, 'dist/coordinator/job.js'));
// 7 steps per epoch with 3 workers (11 + 11 + 10), 6 with 2 (16 + 16).
const TINY = ['--data', 'synthetic', '--train-limit', '192', '--test-limit', '32', '--batch-size', '32', '--lr', '0.05', '--backend', 'wasm'];
const HEARTBEAT_TIMEOUT_S = 4;

let dir = '';
let env: NodeJS.ProcessEnv = {};
const spawned: ChildProcess[] = [];

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `dtrain run …` as a child: the exit code, stdout and stderr once it ends. */
function start(args: string[]): {child: ChildProcess; done: Promise<{code: number | null; stdout: string; stderr: string}>; stderr: () => string} {
  const child = spawn(process.execPath, [BIN, ...args], {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']});
  spawned.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{code: number | null; stdout: string; stderr: string}>((resolve) => child.on('exit', (code) => setImmediate(() => resolve({code, stdout, stderr}))));
  return {child, done, stderr: () => stderr};
}

/** The coordinator's dtrain_job_step gauge (global steps completed). */
async function jobStep(metricsUrl: string): Promise<number> {
  const text = await fetch(metricsUrl).then((r) => r.text(), () => '');
  return Number(/^dtrain_job_step (\S+)/m.exec(text)?.[1] ?? -1);
}

interface Cluster {
  address: string;
  metricsUrl: string;
  workers: number[];
}

/** The worker that holds `rank` in the running job (polled until the job has started; fails at once, with the run's stderr, if the run ends first). */
async function workerAtRank(address: string, rank: number, run: {child: ChildProcess; stderr: () => string}): Promise<{workerId: string; pid: number}> {
  return until(`a busy worker at rank ${rank}`, 60_000, async () => {
    if (run.child.exitCode !== null || run.child.signalCode !== null) throw new Error(`the run ended (${run.child.exitCode ?? run.child.signalCode}) before a worker held rank ${rank}: ${run.stderr().trim().split('\n').slice(-5).join(' | ')}`);
    return (await status(address)).workers.find((w) => w.state === 'busy' && w.rank === rank);
  });
}

async function status(address: string): Promise<{workers: Array<{workerId: string; pid: number; state: string; rank: number}>; jobs: Array<{state: string; error: string}>}> {
  const r = await runDtrain(['cluster', 'status', '--coordinator', address, '--json'], {cwd: dir, env});
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** The checkpoint files are complete and every weight is finite. */
async function assertCheckpointValid(file: string): Promise<void> {
  const st = parseSafetensors(new Uint8Array(await readFile(file)), file);
  assert.ok(st.tensors.size > 100, `${file}: ${st.tensors.size} tensors`);
  for (const [name, t] of st.tensors) if (t.data instanceof Float32Array) assert.ok(t.data.every(Number.isFinite), `${file}: ${name} has a non-finite value`);
}

describe('elastic jobs (built CLI, real processes)', {skip: built ? false : 'dist/ not built (npm run build)'}, () => {
  let cluster: Cluster;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dtrain-elastic-'));
    env = {DTRAIN_CLUSTER_DIR: path.join(dir, 'cluster-state'), DTRAIN_CACHE_DIR: path.join(dir, 'cache')};
  });
  after(async () => {
    for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await runDtrain(['cluster', 'down'], {cwd: dir, env});
    for (const pid of cluster?.workers ?? []) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    if (process.env.DTRAIN_KEEP_TEST_DIR) console.log(`kept ${dir}`);
    else await rm(dir, {recursive: true, force: true});
  });

  test('dtrain run --workers 3: one worker SIGKILLed mid-epoch, the job finishes with 2, one lost step, valid checkpoint', async () => {
    const runDir = path.join(dir, 'local');
    const run = start(['run', '--workers', '3', '--epochs', '2', ...TINY, '--run-dir', runDir]);
    const pids = await until('the local cluster', 60_000, () => /pids ([\d, ]+);/.exec(run.stderr())?.[1].split(', ').map(Number));
    await until('a training step', 90_000, () => (/epoch 1 \[/.test(run.stderr()) ? true : undefined));
    const killedAt = Date.now();
    process.kill(pids[2], 'SIGKILL');
    await until('the regroup', 20_000, () => (/continuing with 2 workers/.test(run.stderr()) ? true : undefined));
    const resumedIn = Date.now() - killedAt;
    const {code, stdout, stderr} = await run.done;
    assert.equal(code, 0, stderr);
    console.log(`SIGKILL → training resumed with 2 workers in ${resumedIn} ms (seen by the client)`);
    assert.ok(resumedIn < HEARTBEAT_TIMEOUT_S * 1000 + 10_000, `resumed ${resumedIn} ms after the kill`);
    assert.match(stderr, /dtrain: epoch 1: continuing with 2 workers after step \d+, [01] lost steps?; lost worker worker-\d \(rank \d on [^)]+\): its session ended/);
    assert.match(stdout, /epoch 1\/2 .*\[(0|1) lost steps?, 2 workers at the end\]/);
    const history = (await readFile(path.join(runDir, 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(history.map((h) => h.workers), [2, 2]);
    assert.ok(history[0].lostSteps <= 1);
    assert.equal(history[1].lostSteps, 0);
    for (const h of history) assert.ok(Number.isFinite(h.trainLoss) && h.testAccuracy >= 0 && h.testAccuracy <= 1, JSON.stringify(h));
    await assertCheckpointValid(path.join(runDir, 'checkpoint-epoch2.safetensors'));
    await until('every local process gone', 15_000, () => (pids.some(isAlive) ? undefined : true));
  });

  test('cluster up: a SIGSTOPped worker is declared dead after the heartbeat timeout, the job continues; woken, it leaves; a new worker joins at an epoch boundary', async () => {
    const up = await runDtrain(['cluster', 'up', '--workers', '3', '--detach', '--port', '0', '--metrics-port', '0', '--backend', 'wasm', '--heartbeat-timeout', String(HEARTBEAT_TIMEOUT_S), '--json'], {cwd: dir, env});
    assert.equal(up.code, 0, up.stderr);
    const state = JSON.parse(up.stdout);
    cluster = {address: state.address, metricsUrl: state.processes[0].metricsUrl, workers: state.processes.slice(1).map((p: {pid: number}) => p.pid)};
    const run = start(['run', '--coordinator', cluster.address, '--workers', '3', '--epochs', '3', ...TINY, '--run-dir', path.join(dir, 'stop'), '--json']);
    const victim = await workerAtRank(cluster.address, 1, run);
    await until('step 2', 90_000, async () => ((await jobStep(cluster.metricsUrl)) >= 2 ? true : undefined));
    const stoppedAt = Date.now();
    process.kill(victim.pid, 'SIGSTOP');
    // Idle until the next epoch boundary, where the job grows back to the 3 workers it asked for.
    const replacement = spawn(process.execPath, [BIN, 'worker', '--coordinator', cluster.address, '--backend', 'wasm'], {cwd: dir, env: {...process.env, ...env}, stdio: 'ignore'});
    spawned.push(replacement);
    await until('the victim declared dead', 20_000, async () => ((await status(cluster.address)).workers.find((w) => w.workerId === victim.workerId)?.state === 'dead' ? true : undefined));
    process.kill(victim.pid, 'SIGCONT');
    const wokenAt = Date.now();
    await until('the woken worker to exit', 15_000, () => (isAlive(victim.pid) ? undefined : true));
    const exitedIn = Date.now() - wokenAt;
    const {code, stdout, stderr} = await run.done;
    // The next tests want the two original survivors only.
    replacement.kill('SIGTERM');
    await until('the replacement to exit', 15_000, () => (replacement.exitCode === null && replacement.signalCode === null ? undefined : true));
    assert.equal(code, 0, stderr);
    const out = JSON.parse(stdout);
    const [regroup, growth] = out.regroups;
    const detection = Number(regroup.detectedAtMs) - stoppedAt;
    const resume = Number(regroup.resumedAtMs) - Number(regroup.detectedAtMs);
    console.log(`SIGSTOP: declared dead after ${detection} ms (timeout ${HEARTBEAT_TIMEOUT_S} s), training resumed ${resume} ms later, woken worker exited ${exitedIn} ms after SIGCONT; lost steps ${regroup.lostSteps}`);
    assert.ok(detection >= HEARTBEAT_TIMEOUT_S * 1000 - 1500 && detection < HEARTBEAT_TIMEOUT_S * 1000 + 3000, `detected ${detection} ms after SIGSTOP`);
    assert.ok(resume < 10_000, `resumed ${resume} ms after detection`);
    assert.equal(out.regroups.length, 2);
    assert.equal(regroup.workers, 2);
    assert.match(regroup.lost[0], new RegExp(`worker ${victim.workerId} \\(rank 1 on .+\\): no heartbeat for`));
    assert.ok(regroup.lostSteps <= 1);
    assert.equal(out.epochs[regroup.epoch].lostSteps, regroup.lostSteps);
    assert.ok(growth.epoch > regroup.epoch, 'the replacement joins at a later epoch boundary');
    assert.deepEqual([growth.workers, growth.lostSteps, growth.step, growth.lost], [3, 0, 0, []]);
    assert.equal(growth.joined.length, 1);
    assert.deepEqual(
      out.epochs.map((e: {workers: number}) => e.workers),
      [0, 1, 2].map((e) => (e < regroup.epoch ? 3 : e < growth.epoch ? 2 : 3)),
    );
    assert.equal(out.workers, 3);
    await assertCheckpointValid(out.checkpoint);
    const metrics = await fetch(cluster.metricsUrl).then((r) => r.text());
    assert.match(metrics, /^dtrain_job_regroups_total 2$/m);
    assert.match(metrics, new RegExp(`^dtrain_job_lost_steps_total ${regroup.lostSteps}$`, 'm'));
    const log = await readFile(path.join(dir, 'cluster-state', 'logs', `worker-${cluster.workers.indexOf(victim.pid)}.log`), 'utf8');
    assert.match(log, /no longer knows|declared dead/);
  });

  test('--min-workers 2: a lost worker pauses the job, a new `dtrain worker` joins with the current weights, the job completes', async () => {
    const survivorsBefore = (await status(cluster.address)).workers.filter((w) => w.state === 'idle');
    assert.equal(survivorsBefore.length, 2);
    const runDir = path.join(dir, 'pause');
    const run = start(['run', '--coordinator', cluster.address, '--workers', '2', '--min-workers', '2', '--epochs', '2', ...TINY, '--run-dir', runDir]);
    const victim = await workerAtRank(cluster.address, 1, run);
    await until('a training step', 90_000, () => (/epoch 1 \[/.test(run.stderr()) ? true : undefined));
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    await until('the pause', 20_000, () => (/job paused in epoch \d: waiting for workers: have 1, need 2, timeout 120 s/.test(run.stderr()) ? true : undefined));
    const pausedIn = Date.now() - killedAt;
    const newcomer = spawn(process.execPath, [BIN, 'worker', '--coordinator', cluster.address, '--backend', 'wasm'], {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'ignore', openSync(path.join(dir, 'newcomer.log'), 'w')]});
    spawned.push(newcomer);
    const spawnedAt = Date.now();
    await until('the regroup', 60_000, () => (/continuing with 2 workers/.test(run.stderr()) ? true : undefined));
    const joinedIn = Date.now() - spawnedAt;
    const {code, stdout, stderr} = await run.done;
    assert.equal(code, 0, stderr);
    console.log(`min-workers pause: paused ${pausedIn} ms after SIGKILL; a new worker process joined and training resumed ${joinedIn} ms after it was spawned (its start-up included)`);
    const regroup = /dtrain: epoch \d: continuing with 2 workers after step \d+, ([01]) lost steps?; lost worker [^;]+: its session ended; joined (worker-\d+) \(resumed/.exec(stderr);
    assert.ok(regroup, stderr);
    assert.ok(joinedIn < 60_000);
    const history = (await readFile(path.join(runDir, 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(history.map((h) => h.workers), [2, 2]);
    assert.equal(history[0].lostSteps + history[1].lostSteps, Number(regroup[1]));
    assert.match(stdout, /final test accuracy [\d.]+% with 2 workers/);
    await assertCheckpointValid(path.join(runDir, 'checkpoint-epoch2.safetensors'));
    const after = await status(cluster.address);
    assert.ok(after.workers.some((w) => w.pid === newcomer.pid && w.workerId === regroup[2] && w.state === 'idle'), 'the newcomer served the job and is idle again');
  });

  test('--min-workers 2 --rejoin-timeout 3: nobody joins, the job fails with a clear error, the checkpoints stay', async () => {
    // The job needs 2 idle workers: the survivor and the newcomer of the test before.
    const workers = (await status(cluster.address)).workers;
    console.log(`workers before the rejoin-timeout job: ${workers.map((w) => `${w.workerId} ${w.state}`).join(', ')}`);
    const runDir = path.join(dir, 'timeout');
    const run = start(['run', '--coordinator', cluster.address, '--workers', '2', '--min-workers', '2', '--rejoin-timeout', '3', '--epochs', '3', ...TINY, '--run-dir', runDir]);
    const victim = await workerAtRank(cluster.address, 1, run);
    await until('the first checkpoint', 90_000, () => (existsSync(path.join(runDir, 'latest.json')) ? true : undefined));
    const before = await readFile(path.join(runDir, 'checkpoint-epoch1.safetensors'));
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    const {code, stderr} = await run.done;
    const failedIn = Date.now() - killedAt;
    assert.equal(code, 1);
    assert.match(stderr, /Error: job failed: waiting for workers timed out: have 1, need 2 \(--min-workers\) after 3 s; epochs 1–[12] are checkpointed in \S+: continue with --resume/);
    assert.match(stderr, /job paused in epoch \d: waiting for workers: have 1, need 2, timeout 3 s/);
    assert.ok(failedIn >= 3000 && failedIn < 15_000, `failed ${failedIn} ms after the kill`);
    assert.ok((await readFile(path.join(runDir, 'checkpoint-epoch1.safetensors'))).equals(before), 'the saved checkpoint is untouched');
    const latest = JSON.parse(await readFile(path.join(runDir, 'latest.json'), 'utf8'));
    assert.ok(latest.epoch >= 1);
    await assertCheckpointValid(path.join(runDir, `checkpoint-epoch${latest.epoch}.safetensors`));
    assert.equal((await status(cluster.address)).jobs.at(-1)!.state, 'failed');
  });

  test('--no-elastic: the lost worker fails the job at once, naming its rank and host', async () => {
    const extra = spawn(process.execPath, [BIN, 'worker', '--coordinator', cluster.address, '--backend', 'wasm'], {cwd: dir, env: {...process.env, ...env}, stdio: 'ignore'});
    spawned.push(extra);
    await until('2 idle workers', 30_000, async () => ((await status(cluster.address)).workers.filter((w) => w.state === 'idle').length >= 2 ? true : undefined));
    const run = start(['run', '--coordinator', cluster.address, '--workers', '2', '--no-elastic', '--epochs', '2', ...TINY, '--run-dir', path.join(dir, 'inelastic')]);
    const victim = await workerAtRank(cluster.address, 1, run);
    await until('a training step', 90_000, () => (/epoch 1 \[/.test(run.stderr()) ? true : undefined));
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    const {code, stderr} = await run.done;
    const failedIn = Date.now() - killedAt;
    console.log(`--no-elastic: the run failed ${failedIn} ms after SIGKILL`);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`Error: job failed: worker ${victim.workerId} \\(rank 1 on [^)]+\\) lost: its session ended`));
    assert.doesNotMatch(stderr, /continuing with/);
    assert.ok(failedIn < 10_000, `failed ${failedIn} ms after the kill`);
  });

  test('a worker frozen as the job starts is declared dead during set-up; the job starts again with the others', async () => {
    for (let i = 0; i < 2; i++) spawned.push(spawn(process.execPath, [BIN, 'worker', '--coordinator', cluster.address, '--backend', 'wasm'], {cwd: dir, env: {...process.env, ...env}, stdio: 'ignore'}));
    const idle = await until('3 idle workers', 30_000, async () => {
      const w = (await status(cluster.address)).workers.filter((x) => x.state === 'idle');
      return w.length >= 3 ? w : undefined;
    });
    // Frozen while idle, just before the job is submitted: its last heartbeat is fresh, so the job
    // takes it, and its set-up (dataset, ring) then waits on it until the heartbeat timeout.
    const frozen = idle[0];
    process.kill(frozen.pid, 'SIGSTOP');
    const run = start(['run', '--coordinator', cluster.address, '--workers', '3', '--epochs', '1', ...TINY, '--run-dir', path.join(dir, 'setup'), '--json']);
    const {code, stdout, stderr} = await run.done;
    process.kill(frozen.pid, 'SIGCONT');
    assert.equal(code, 0, stderr);
    const out = JSON.parse(stdout);
    assert.equal(out.regroups.length, 1);
    const [restart] = out.regroups;
    assert.deepEqual([restart.epoch, restart.step, restart.lostSteps, restart.workers], [0, 0, 0, 2]);
    assert.match(restart.lost[0], new RegExp(`worker ${frozen.workerId} \\(rank \\d on .+\\): no heartbeat for`));
    assert.deepEqual(out.epochs.map((e: {workers: number}) => e.workers), [2]);
    await assertCheckpointValid(out.checkpoint);
    await until('the frozen worker, woken, to exit', 15_000, () => (isAlive(frozen.pid) ? undefined : true));
  });
});
