/**
 * `dtrain bench allreduce`: N real processes on loopback (bench-worker), each all-reducing a
 * float32 buffer; bandwidths as nccl-tests define them (algbw = bytes / time, busbw = algbw·2(N−1)/N).
 */
import {existsSync} from 'node:fs';
import {fileURLToPath} from 'node:url';

import {ExitCode, UserError} from '../cli/errors.js';
import {newCurveKeyPair, type RingCurveKeys} from './curve.js';
import {runRingProcesses} from './processes.js';
import type {RingOptions} from './ring.js';

/** ShuffleNetV2 gradient sizes, roughly: 0.5 (352k params), 1.5 (2.5M), 2 (5.3M) × 4 bytes. */
export const DEFAULT_BENCH_BYTES = [1.4e6, 10e6, 21e6];

export type BenchRingOptions = Pick<RingOptions, 'chunkBytes' | 'timeoutMs' | 'partialSums' | 'compression' | 'sendHighWaterMark' | 'receiveHighWaterMark' | 'socketBufferBytes'>;

export interface AllReduceBenchOptions {
  workers: number;
  /** Payload sizes in bytes, each a multiple of 4. */
  sizes: number[];
  iters: number;
  warmup: number;
  ring?: BenchRingOptions;
  /** Run the ring over CURVE (encrypted, keys checked), as cluster jobs do. */
  curve?: boolean;
}

export interface AllReduceBenchResult {
  /** plain or curve */
  security: 'plain' | 'curve';
  workers: number;
  bytes: number;
  iters: number;
  /** Median over iterations of the slowest rank's time. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  algbwGBs: number;
  busbwGBs: number;
}

/** What the parent tells a worker (argv[2], JSON). */
export interface WorkerConfig {
  rank: number;
  workers: number;
  sizes: number[];
  iters: number;
  warmup: number;
  ring: BenchRingOptions;
  /** Throw-away keys of this benchmark's ring (loopback only). */
  curve?: RingCurveKeys;
}

export interface WorkerSizeResult {
  bytes: number;
  times: number[];
}

const UNITS: Record<string, number> = {b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3};

/** "21MB", "1.4 MB", "256KiB", "4096" → bytes (MB = 10^6, MiB = 2^20), rounded down to whole float32 elements. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmg]i?b|b)?\s*$/i.exec(text);
  if (!m) throw new UserError(`cannot read "${text}" as a byte count`, {exitCode: ExitCode.usage, suggestion: 'write e.g. 4096, 1.4MB, 10MB or 256KiB'});
  const bytes = Math.floor((Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]) / 4) * 4;
  if (bytes < 4) throw new UserError(`"${text}" is less than one float32 (4 bytes)`, {exitCode: ExitCode.usage});
  return bytes;
}

/** nccl-tests' bus bandwidth for all-reduce: what each link carries, comparable across world sizes. */
export function busBandwidth(algbwGBs: number, workers: number): number {
  return (algbwGBs * 2 * (workers - 1)) / workers;
}

/** The compiled worker next to this module (dist/), or its TypeScript source when run through tsx. */
function workerScript(): {script: string; execArgv: string[]} {
  const js = fileURLToPath(new URL('./bench-worker.js', import.meta.url));
  if (existsSync(js)) return {script: js, execArgv: []};
  return {script: fileURLToPath(new URL('./bench-worker.ts', import.meta.url)), execArgv: ['--import', 'tsx']};
}

export async function benchAllReduce(options: AllReduceBenchOptions): Promise<AllReduceBenchResult[]> {
  const {workers, sizes, iters, warmup} = options;
  if (!Number.isInteger(workers) || workers < 1) throw new UserError(`--workers must be at least 1, got ${workers}`, {exitCode: ExitCode.usage});
  if (iters < 1 || warmup < 0) throw new UserError('--iters must be at least 1 and --warmup at least 0', {exitCode: ExitCode.usage});
  const {script, execArgv} = workerScript();
  const keys = options.curve ? Array.from({length: workers}, () => newCurveKeyPair()) : undefined;
  const curve = (rank: number): RingCurveKeys | undefined => keys && {...keys[rank], peers: keys.map((k) => k.publicKey)};
  const {results} = await runRingProcesses<WorkerSizeResult[]>({
    script,
    execArgv,
    workers,
    args: (rank) => [JSON.stringify({rank, workers, sizes, iters, warmup, ring: options.ring ?? {}, curve: curve(rank)} satisfies WorkerConfig)],
  });
  return sizes.map((bytes, s) => summarise(options.curve ? 'curve' : 'plain', workers, bytes, results.map((r) => r[s].times)));
}

/** Per iteration the slowest rank counts (the all-reduce is done when the last rank has it); also summarises gloo's times (src/bench/allreduce.ts). */
export function summarise(security: AllReduceBenchResult['security'], workers: number, bytes: number, timesPerRank: number[][]): AllReduceBenchResult {
  const iters = timesPerRank[0].length;
  const slowest = Array.from({length: iters}, (_, i) => Math.max(...timesPerRank.map((t) => t[i]))).sort((a, b) => a - b);
  const medianMs = slowest.length % 2 ? slowest[(iters - 1) / 2] : (slowest[iters / 2 - 1] + slowest[iters / 2]) / 2;
  const algbwGBs = bytes / (medianMs * 1e6);
  return {security, workers, bytes, iters, medianMs, minMs: slowest[0], maxMs: slowest[iters - 1], algbwGBs, busbwGBs: busBandwidth(algbwGBs, workers)};
}
