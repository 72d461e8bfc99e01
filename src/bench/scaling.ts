/**
 * `dtrain bench scaling`: `dtrain run --json` itself (a local coordinator and N real worker
 * processes) once per worker count, same global batch and data; throughput, efficiency against
 * one worker, and the share of training time spent in the all-reduce (which includes waiting for
 * the slowest peer). Numbers come from the run's own per-epoch report (coordinator/job.ts aggregate).
 */
import {execFile} from 'node:child_process';
import {mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import type {Compression} from '../allreduce/ring.js';
import {ExitCode, UserError} from '../cli/errors.js';
import type {ClusterEpoch, ClusterRunResult} from '../coordinator/cluster-run.js';
import {BIN} from '../coordinator/local-cluster.js';
import type {ModelSize} from '../model/architecture.js';

export interface ScalingOptions {
  workers: number[];
  size: ModelSize;
  globalBatch: number;
  trainLimit: number;
  testLimit: number;
  /** Epochs per run; the last one is measured (the first also pays for warm-up). */
  epochs: number;
  backend: string;
  /** What the ring carries, one run each per worker count above 1 (one worker has no ring). */
  compressions: Compression[];
}

export interface ScalingRow {
  workers: number;
  gradCompression: Compression;
  backend: string;
  device: string;
  /** Aggregate training images/s of the measured epoch (all workers together). */
  imagesPerSec: number;
  /** Training time of the measured epoch (slowest rank). */
  seconds: number;
  steps: number;
  /** All-reduce time per rank in that epoch, mean over ranks: reducing plus waiting for peers. */
  allreduceSeconds: number;
  /** allreduceSeconds / seconds. */
  allreduceShare: number;
  /** imagesPerSec / (workers × the first row's imagesPerSec per worker); 1 is perfect scaling. */
  efficiency: number;
}

export interface ScalingReport {
  size: ModelSize;
  globalBatch: number;
  trainLimit: number;
  testLimit: number;
  epochs: number;
  /** 0-based epoch whose numbers are reported (the last). */
  measuredEpoch: number;
  results: ScalingRow[];
}

/** The run's measured (last) epoch as one row, before efficiency is known. */
export function scalingRow(run: Pick<ClusterRunResult, 'workers' | 'backend' | 'device' | 'epochs' | 'gradCompression'>): Omit<ScalingRow, 'efficiency'> {
  const e: ClusterEpoch | undefined = run.epochs.at(-1);
  if (!e) throw new UserError(`dtrain run with ${run.workers} workers reported no epoch`);
  return {workers: run.workers, gradCompression: run.gradCompression, backend: run.backend, device: run.device, imagesPerSec: e.imagesPerSec, seconds: e.seconds, steps: e.steps, allreduceSeconds: e.allreduceSeconds, allreduceShare: e.allreduceSeconds / e.seconds};
}

/** Efficiency of each row against the first row's throughput per worker. */
export function withEfficiency(rows: Array<Omit<ScalingRow, 'efficiency'>>): ScalingRow[] {
  const base = rows[0] ? rows[0].imagesPerSec / rows[0].workers : Number.NaN;
  return rows.map((r) => ({...r, efficiency: r.imagesPerSec / (r.workers * base)}));
}

/** The arguments of `dtrain run` for one worker count: the cluster path even for 1 worker (--checkpoint-dir), so every count runs the same code. */
export function runArgs(options: ScalingOptions, workers: number, runDir: string, compression: Compression = 'none'): string[] {
  return [
    'run', '--json', '--workers', String(workers), '--size', String(options.size), '--batch-size', String(options.globalBatch),
    '--data', 'synthetic', '--train-limit', String(options.trainLimit), '--test-limit', String(options.testLimit), '--epochs', String(options.epochs),
    '--backend', options.backend, '--run-dir', runDir, '--checkpoint-dir', runDir, '--grad-compression', compression,
  ];
}

export async function benchScaling(options: ScalingOptions, progress: (line: string) => void = () => {}): Promise<ScalingReport> {
  if (options.workers.length === 0) throw new UserError('--workers needs at least one count', {exitCode: ExitCode.usage});
  const rows: Array<Omit<ScalingRow, 'efficiency'>> = [];
  for (const workers of options.workers) {
    for (const compression of workers === 1 ? (['none'] as const) : options.compressions) {
      progress(`  dtrain run --workers ${workers} --grad-compression ${compression}: ${options.epochs} epoch(s) of ${options.trainLimit} images, global batch ${options.globalBatch}`);
      const dir = await mkdtemp(join(tmpdir(), 'dtrain-scaling-'));
      try {
        rows.push(scalingRow(await runJson(runArgs(options, workers, dir, compression))));
      } finally {
        await rm(dir, {recursive: true, force: true});
      }
    }
  }
  const {size, globalBatch, trainLimit, testLimit, epochs} = options;
  return {size, globalBatch, trainLimit, testLimit, epochs, measuredEpoch: epochs - 1, results: withEfficiency(rows)};
}

function runJson(args: string[]): Promise<ClusterRunResult> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [BIN, ...args], {maxBuffer: 64 * 1024 * 1024}, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim().split('\n').at(-1) ?? err.message;
        reject(new UserError(`dtrain ${args.slice(0, 4).join(' ')} failed: ${why}`, {suggestion: 'run that `dtrain run` by hand to see its whole output'}));
        return;
      }
      try {
        resolve(JSON.parse(stdout) as ClusterRunResult);
      } catch {
        reject(new UserError(`dtrain ${args.slice(0, 4).join(' ')} printed no JSON`));
      }
    }),
  );
}
