/**
 * The cluster token, TLS and hostile input against real processes of the built CLI: a coordinator
 * that requires a token refuses missing and wrong ones (UNAUTHENTICATED, one line, exit 6, a log
 * line without the token, no registry entry), serves TLS with a certificate made here, refuses an
 * oversized message and survives random bytes on its ports, then still runs a job. Needs dist/.
 */
import assert from 'node:assert/strict';
import {type ChildProcess, execFileSync, spawn} from 'node:child_process';
import {existsSync, openSync} from 'node:fs';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import {connect} from 'node:net';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {credentials, Metadata, type ServiceError, status as GrpcStatus} from '@grpc/grpc-js';

import {isLoopbackPeer, NO_TOKEN_REFUSAL, rateLimitedLog, refusal, TOKEN_METADATA_KEY, tokenInterceptor, tokenMatches} from '../../src/coordinator/auth.js';
import {CoordinatorClient} from '../../src/gen/dtrain.js';
import {GRPC_MESSAGE_LIMIT} from '../../src/coordinator/server.js';
import {runDtrain} from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(root, 'bin/run.js');
const built = existsSync(path.join(root, 'dist/coordinator/auth.js'));
const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
})();
const TOKEN = 'test-token-4f1c9a2b7d';

let dir = '';
const children: ChildProcess[] = [];

interface Started {
  child: ChildProcess;
  port: number;
  log: () => Promise<string>;
}

/** A long-running `dtrain coordinator` on a free port; resolves once it listens. */
async function startCoordinator(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<Started> {
  const portFile = path.join(dir, `${name}.port`);
  const logFile = path.join(dir, `${name}.log`);
  const out = openSync(logFile, 'w');
  const child = spawn(process.execPath, [BIN, 'coordinator', '--port', '0', '--metrics-port', '0', '--port-file', portFile, ...args], {stdio: ['ignore', out, out], env: {...process.env, DTRAIN_TOKEN: undefined, ...env}});
  children.push(child);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await readFile(portFile, 'utf8').catch(() => '');
    if (Number(text) > 0) return {child, port: Number(text), log: () => readFile(logFile, 'utf8')};
    assert.ok(child.exitCode === null, `coordinator exited: ${await readFile(logFile, 'utf8')}`);
    assert.ok(Date.now() < deadline, 'coordinator did not listen within 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Opens a raw TCP connection, writes bytes, resolves 'closed' when the peer closes it ('open' after ms; 'refused' when nobody listened). */
function sendGarbage(port: number, bytes: Buffer, ms = 3000): Promise<'closed' | 'open' | 'refused'> {
  return new Promise((resolve) => {
    let connected = false;
    const socket = connect(port, '127.0.0.1', () => {
      connected = true;
      socket.write(bytes);
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('open');
    }, ms);
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(connected ? 'closed' : 'refused');
    });
  });
}

function garbage(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

test('refusal: missing, wrong and right tokens; without a token only loopback peers', () => {
  const md = (value?: string) => {
    const m = new Metadata();
    if (value !== undefined) m.set(TOKEN_METADATA_KEY, value);
    return m;
  };
  assert.equal(refusal(TOKEN, md(), '10.0.0.5:4000'), 'missing token');
  assert.equal(refusal(TOKEN, md(TOKEN), '10.0.0.5:4000'), 'missing token', 'the Bearer scheme is required');
  assert.equal(refusal(TOKEN, md(`Bearer ${TOKEN}x`), '127.0.0.1:4000'), 'wrong token');
  assert.equal(refusal(TOKEN, md(`Bearer ${TOKEN}`), '10.0.0.5:4000'), undefined);
  for (const peer of ['127.0.0.1:4000', '127.8.9.1:1', '[::1]:4000', 'ipv6:[::ffff:127.0.0.1]:4000', 'unix:/tmp/s']) assert.equal(refusal(undefined, md(), peer), undefined, peer);
  for (const peer of ['10.0.0.5:4000', '[2001:db8::1]:4000', '128.0.0.1:1', '[::ffff:10.0.0.1]:4000']) {
    assert.equal(isLoopbackPeer(peer), false, peer);
    assert.equal(refusal(undefined, md(`Bearer ${TOKEN}`), peer), NO_TOKEN_REFUSAL, peer);
  }
  assert.ok(tokenMatches('abc', 'abc') && !tokenMatches('abc', 'abd') && !tokenMatches('abc', 'abcd'));
});

test('refusal logs are rate-limited: a flood of bad calls is counted, not logged line by line', () => {
  const lines: string[] = [];
  let t = 0;
  const log = rateLimitedLog((l) => lines.push(l), 3, 1000, () => t);
  for (let i = 0; i < 10; i++) log(`refused ${i}`);
  assert.deepEqual(lines, ['refused 0', 'refused 1', 'refused 2']);
  t = 1000;
  log('refused 10');
  assert.deepEqual(lines.slice(3), ['7 more like it in the last 1 s, not logged one by one', 'refused 10']);
});

describe('cluster token, TLS and hostile input (built CLI, real processes)', {skip: built ? false : 'dist/ not built (npm run build)'}, () => {
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dtrain-auth-'));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await rm(dir, {recursive: true, force: true});
  });

  test('a token coordinator: missing or wrong token refused (exit 6, logged without the token, nothing registered); garbage and an oversized message survived; the right token runs a job', async () => {
    const coordinator = await startCoordinator('token', [], {DTRAIN_TOKEN: TOKEN});
    const address = `127.0.0.1:${coordinator.port}`;
    const env = {DTRAIN_CLUSTER_DIR: path.join(dir, 'state'), DTRAIN_CACHE_DIR: path.join(dir, 'cache')};
    const status = (extra: NodeJS.ProcessEnv, ...args: string[]) => runDtrain(['cluster', 'status', '--coordinator', address, '--json', ...args], {cwd: dir, env: {...env, DTRAIN_TOKEN: undefined, ...extra}});

    const missing = await status({});
    assert.equal(missing.code, 6, missing.stderr);
    assert.match(missing.stderr, new RegExp(`^Error: the coordinator at ${address} refused this token \\(UNAUTHENTICATED: missing token\\)\\nTry this: set DTRAIN_TOKEN or --token-file to the cluster's token\\n$`));
    const wrong = await status({DTRAIN_TOKEN: 'not-the-token'});
    assert.equal(wrong.code, 6, wrong.stderr);
    assert.match(wrong.stderr, /UNAUTHENTICATED: wrong token/);

    // A worker with the wrong token: refused at Register, exits non-zero, leaves no registry entry.
    const refusedWorker = await runDtrain(['worker', '--coordinator', address, '--backend', 'cpu'], {cwd: dir, env: {...env, DTRAIN_TOKEN: 'not-the-token'}, timeoutMs: 60_000});
    assert.equal(refusedWorker.code, 6, refusedWorker.stderr);
    assert.match(refusedWorker.stderr, /refused this token \(UNAUTHENTICATED: wrong token\)/);

    const log = await coordinator.log();
    assert.match(log, /refused \/dtrain\.v1\.Coordinator\/ClusterStatus from 127\.0\.0\.1:\d+: missing token/);
    assert.match(log, /refused \/dtrain\.v1\.Coordinator\/ClusterStatus from \S+: wrong token/);
    assert.match(log, /refused \/dtrain\.v1\.Coordinator\/Register from \S+: wrong token/);
    assert.doesNotMatch(log, /not-the-token|test-token/, 'no token in the log');

    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`, {mode: 0o600});
    const ok = await status({DTRAIN_TOKEN: 'not-the-token'}, '--token-file', tokenFile);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout).workers, [], 'the refused worker left no entry');

    // Hostile bytes: random data on the gRPC and metrics ports is dropped, the process lives on.
    const metricsPort = Number(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(log)?.[1]);
    assert.ok(metricsPort > 0);
    for (const port of [coordinator.port, metricsPort]) for (const seed of [1, 2]) assert.equal(await sendGarbage(port, garbage(64 * 1024, seed)), 'closed', `port ${port} dropped the connection`);
    // An HTTP/2 preface followed by junk frames (past the parser's first check).
    assert.equal(await sendGarbage(coordinator.port, Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), garbage(4096, 3)])), 'closed');

    // A message over the limit (from a client whose own send limit is off): the server's RESOURCE_EXHAUSTED, and it lives on.
    const client = new CoordinatorClient(address, credentials.createInsecure(), {'grpc.max_send_message_length': -1, interceptors: [tokenInterceptor(TOKEN)]});
    const refused = await new Promise<ServiceError | undefined>((resolve) => {
      const call = client.submitJob({workers: 1, hyper: undefined, epochs: 1, scheduler: 'constant', data: 'synthetic', dataDir: 'x'.repeat(GRPC_MESSAGE_LIMIT + 1), trainLimit: 0, testLimit: 0, checkpointDir: '', resume: false, backend: '', waitMs: 0, runDir: '', keepCheckpoints: 0, failOnWorkerLoss: false, minWorkers: 0, rejoinTimeoutMs: 0});
      call.on('data', () => {});
      call.on('error', (err: ServiceError) => resolve(err));
      call.on('end', () => resolve(undefined));
    });
    client.close();
    assert.equal(refused?.code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match(refused.details, /Received message larger than max \(\d+ vs 67108864\)/);
    assert.equal(coordinator.child.exitCode, null, 'the coordinator survived');

    // The right token: two workers (session stream, heartbeat thread, dataset stream, CURVE ring) and a
    // job, during which every worker port (ring inbox, /metrics) gets random bytes too.
    const workerLogs = ['', ''];
    for (const i of [0, 1]) {
      const worker = spawn(process.execPath, [BIN, 'worker', '--coordinator', address, '--backend', 'wasm', '--metrics-port', '0', '--exit-with-parent'], {stdio: ['pipe', 'ignore', 'pipe'], env: {...process.env, ...env, DTRAIN_TOKEN: TOKEN}});
      worker.stderr.on('data', (d: Buffer) => (workerLogs[i] += d.toString()));
      children.push(worker);
    }
    const running = runDtrain(['run', '--coordinator', address, '--workers', '2', '--epochs', '2', '--data', 'synthetic', '--train-limit', '64', '--test-limit', '16', '--batch-size', '16', '--backend', 'wasm', '--run-dir', path.join(dir, 'run'), '--json'], {cwd: dir, env: {...env, DTRAIN_TOKEN: TOKEN}});
    const ports = async (): Promise<number[]> => {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
        const found = workerLogs.flatMap((l) => [/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(l)?.[1], /ring inbox tcp:\/\/127\.0\.0\.1:(\d+) \(CURVE\)/.exec(l)?.[1]]);
        if (found.every(Boolean)) return found.map(Number);
      }
      assert.fail(`the workers never reported their ports:\n${workerLogs.join('\n')}`);
    };
    for (const port of await ports()) assert.equal(await sendGarbage(port, garbage(16 * 1024, port)), 'closed', `worker port ${port} dropped the connection`);
    const run = await running;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).epochs.length, 2);
    const after = await coordinator.log();
    assert.equal(after.match(/refused/g)?.length, log.match(/refused/g)?.length, `the right token is never refused: ${after}`);
    assert.doesNotMatch(workerLogs.join('\n'), /refused a ring connection/, 'the job\'s own ranks always get through');
  });

  test('a coordinator on 0.0.0.0 without a token warns at startup that it serves loopback callers only', async () => {
    const coordinator = await startCoordinator('no-token', ['--host', '0.0.0.0'], {});
    assert.match(await coordinator.log(), /no token: loopback callers only, plain gRPC\)\ndtrain coordinator: WARNING: listening on 0\.0\.0\.0 without a cluster token: every caller from another machine is refused/);
    const local = await runDtrain(['cluster', 'status', '--coordinator', `127.0.0.1:${coordinator.port}`, '--json'], {cwd: dir, env: {DTRAIN_TOKEN: undefined}});
    assert.equal(local.code, 0, local.stderr);
    coordinator.child.kill('SIGTERM');
  });

  test('TLS: a coordinator with a self-signed certificate serves clients that trust it, not plain ones', {skip: hasOpenssl ? false : 'no openssl CLI'}, async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert], {stdio: 'ignore'});
    const coordinator = await startCoordinator('tls', ['--tls-cert', cert, '--tls-key', key], {DTRAIN_TOKEN: TOKEN});
    const address = `127.0.0.1:${coordinator.port}`;
    assert.match(await coordinator.log(), /token required, TLS/);
    const withCa = await runDtrain(['cluster', 'status', '--coordinator', address, '--tls-ca', cert, '--json'], {cwd: dir, env: {DTRAIN_TOKEN: TOKEN}});
    assert.equal(withCa.code, 0, withCa.stderr);
    assert.equal(JSON.parse(withCa.stdout).address, address);
    const caFromEnv = await runDtrain(['cluster', 'status', '--coordinator', address, '--json'], {cwd: dir, env: {DTRAIN_TOKEN: 'wrong', DTRAIN_TLS_CA: cert}});
    assert.equal(caFromEnv.code, 6, 'TLS from DTRAIN_TLS_CA reaches the token check');
    const plain = await runDtrain(['cluster', 'status', '--coordinator', address], {cwd: dir, env: {DTRAIN_TOKEN: TOKEN, DTRAIN_TLS_CA: undefined}, timeoutMs: 30_000});
    assert.equal(plain.code, 4, plain.stderr);
    assert.match(plain.stderr, new RegExp(`cannot reach the coordinator at ${address}`));
  });
});
