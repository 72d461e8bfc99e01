import {type ChildProcess, spawn} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {chmod, mkdir, open, readFile, rm, writeFile} from 'node:fs/promises';
import {homedir} from 'node:os';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';

import {ExitCode, UserError} from '../cli/errors.js';
import {localWorkerMetricsPort} from '../metrics/index.js';
import {isAlive} from '../util/process.js';
import {newClusterToken} from './auth.js';

/** The CLI entry point, found from this module (dist/coordinator or src/coordinator → bin/run.js). */
export const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url));

export interface ClusterProcessInfo {
  role: 'coordinator' | 'worker';
  pid: number;
  log?: string;
  /** Filled in once the process reports it (cluster up asks the coordinator). */
  metricsUrl?: string;
}

/** What `cluster up --detach` leaves for `cluster status|down`: cluster.json in the state directory. */
export interface ClusterState {
  address: string;
  port: number;
  startedAt: string;
  processes: ClusterProcessInfo[];
  logDir: string;
  /** `cluster up --prometheus`: the local Prometheus scraping the cluster. */
  prometheus?: {pid: number; url: string; log: string};
}

export function clusterStateDir(): string {
  return process.env.DTRAIN_CLUSTER_DIR ?? join(homedir(), '.cache', 'dtrain', 'cluster');
}

export function clusterStateFile(dir = clusterStateDir()): string {
  return join(dir, 'cluster.json');
}

export async function readClusterState(dir = clusterStateDir()): Promise<ClusterState | undefined> {
  try {
    return JSON.parse(await readFile(clusterStateFile(dir), 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}

/** Alive and (where /proc says) still the process we started (its command line holds `marker`): a pid from an old state file may have been reused. */
export function isOurs(pid: number, marker = 'run.js'): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return process.platform !== 'linux';
  }
}

export interface StartClusterOptions {
  workers: number;
  backend: string;
  /** Passed to every worker as --require-backend. */
  requireBackend?: string;
  /** Passed to every worker as --precision. */
  precision?: string;
  host?: string;
  port?: number;
  heartbeatTimeoutMs?: number;
  /** Coordinator metrics port; worker i takes localWorkerMetricsPort(i, it); 0 (default): every process takes a free port, so throw-away clusters never collide. */
  metricsPort?: number;
  /** Detached: children survive this process (cluster up --detach); attached: they exit with it. */
  detach: boolean;
  logDir: string;
  /** Extra environment for the children (tests: DTRAIN_CACHE_DIR). */
  env?: NodeJS.ProcessEnv;
}

export interface LocalCluster {
  address: string;
  port: number;
  /** The fresh random token of this cluster (the children have it in DTRAIN_TOKEN). */
  token: string;
  processes: ClusterProcessInfo[];
  children: ChildProcess[];
  /** SIGTERM to all (the coordinator ends every session, so workers exit too), SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a coordinator and N workers as child processes on this machine. Attached children get a
 * stdin pipe and `--exit-with-parent`, so they exit even when this process is SIGKILLed; workers also
 * exit when their coordinator session ends.
 */
export async function startLocalCluster(options: StartClusterOptions): Promise<LocalCluster> {
  await mkdir(options.logDir, {recursive: true});
  const host = options.host ?? '127.0.0.1';
  const portFile = join(options.logDir, `coordinator-${process.pid}-${Date.now()}.port`);
  const children: ChildProcess[] = [];
  const processes: ClusterProcessInfo[] = [];
  const token = newClusterToken();
  // The token goes through the environment, not argv (which every local user can read in ps);
  // the local coordinator is plain gRPC on loopback, so an inherited CA must not make workers try TLS.
  const env: NodeJS.ProcessEnv = {...process.env, ...options.env, DTRAIN_TOKEN: token};
  delete env.DTRAIN_TLS_CA;
  const launch = async (role: 'coordinator' | 'worker', args: string[], name: string): Promise<ChildProcess> => {
    const log = join(options.logDir, `${name}.log`);
    const fd = await open(log, 'a');
    const child = spawn(process.execPath, [BIN, role, ...args, ...(options.detach ? [] : ['--exit-with-parent'])], {
      detached: options.detach,
      stdio: [options.detach ? 'ignore' : 'pipe', fd.fd, fd.fd],
      env,
    });
    await fd.close();
    if (options.detach) child.unref();
    children.push(child);
    processes.push({role, pid: child.pid!, log});
    return child;
  };
  const cluster: LocalCluster = {
    address: '',
    port: 0,
    token,
    processes,
    children,
    stop: (graceMs = 10_000) => stopProcesses(processes.map((p) => p.pid), graceMs),
  };
  try {
    const coordinator = await launch(
      'coordinator',
      ['--host', host, '--port', String(options.port ?? 0), '--metrics-port', String(options.metricsPort ?? 0), '--port-file', portFile, ...(options.heartbeatTimeoutMs ? ['--heartbeat-timeout', String(options.heartbeatTimeoutMs / 1000)] : [])],
      'coordinator',
    );
    const port = await waitForPortFile(portFile, coordinator, join(options.logDir, 'coordinator.log'));
    await rm(portFile, {force: true});
    cluster.port = port;
    cluster.address = `${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    for (let i = 0; i < options.workers; i++) await launch('worker', ['--coordinator', cluster.address, '--backend', options.backend, ...(options.requireBackend ? ['--require-backend', options.requireBackend] : []), ...(options.precision ? ['--precision', options.precision] : []), '--metrics-port', String(localWorkerMetricsPort(i, options.metricsPort ?? 0))], `worker-${i}`);
    return cluster;
  } catch (err) {
    await cluster.stop(2000);
    throw err;
  }
}

async function waitForPortFile(file: string, child: ChildProcess, log: string): Promise<number> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = await readFile(log, 'utf8').catch(() => '');
      throw new UserError(`the coordinator exited before listening: ${tail.trim().split('\n').slice(-3).join(' | ')}`, {suggestion: `see ${log}`});
    }
    try {
      const port = Number((await readFile(file, 'utf8')).trim());
      if (port > 0) return port;
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new UserError('the coordinator did not start listening within 60 s', {exitCode: ExitCode.network, suggestion: `see ${log}`});
}

/** SIGTERM, wait up to graceMs for every pid to exit, then SIGKILL the rest. */
export async function stopProcesses(pids: number[], graceMs = 10_000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  for (const pid of pids.filter(isAlive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

export async function writeClusterState(state: ClusterState, dir = clusterStateDir()): Promise<void> {
  await mkdir(dir, {recursive: true});
  await writeFile(clusterStateFile(dir), JSON.stringify(state, null, 2) + '\n');
}

export async function removeClusterState(dir = clusterStateDir()): Promise<void> {
  await rm(clusterStateFile(dir), {force: true});
  await rm(clusterTokenFile(dir), {force: true});
}

/** The token of the cluster `cluster up` started, next to cluster.json, readable by its owner only. */
export function clusterTokenFile(dir = clusterStateDir()): string {
  return join(dir, 'token');
}

export async function writeClusterToken(token: string, dir = clusterStateDir()): Promise<void> {
  await mkdir(dir, {recursive: true});
  const file = clusterTokenFile(dir);
  await writeFile(file, `${token}\n`, {mode: 0o600});
  // mode applies only when the file is created; an old one keeps its mode otherwise.
  await chmod(file, 0o600);
}

/** The local cluster's token when `address` is that cluster's coordinator (so `run --coordinator` and `cluster status` need no flag for it). */
export async function localClusterToken(address: string, dir = clusterStateDir()): Promise<string | undefined> {
  const state = await readClusterState(dir);
  if (state?.address !== address) return undefined;
  return readFile(clusterTokenFile(dir), 'utf8').then(
    (t) => t.trim(),
    () => undefined,
  );
}
