import {appendFile, mkdir, readFile} from 'node:fs/promises';
import {join, resolve} from 'node:path';

import type {Compression} from '../allreduce/index.js';
import {ExitCode, UserError} from '../cli/errors.js';
import {CIFAR10_CLASSES} from '../data/index.js';
import type {EpochResult, JobAccepted, Paused, Regrouped, StepDone} from '../gen/dtrain.js';
import type {LocalRunOptions} from '../worker/local-run.js';
import type {ClientSecurity} from './auth.js';
import {submitJob} from './client.js';
import {type ClusterProcessInfo, startLocalCluster} from './local-cluster.js';

export interface ClusterRunOptions extends LocalRunOptions {
  workers: number;
  /** HOST:PORT of a running coordinator; without it a local cluster is started for the job and stopped afterwards. */
  coordinator?: string;
  /** Token and TLS CA for --coordinator (a local cluster gets its own fresh token). */
  security?: ClientSecurity;
  checkpointDir: string;
  resume: boolean;
  /** Epochs of checkpoints kept in checkpointDir (default DEFAULT_KEEP_CHECKPOINTS). */
  keepCheckpoints?: number;
  heartbeatTimeoutMs?: number;
  /** Default true: a lost worker does not fail the job, the others continue (--no-elastic: false). */
  elastic: boolean;
  /** Fewer workers than this: the job pauses for workers to register (default 1). */
  minWorkers: number;
  /** Longest such pause before the job fails. */
  rejoinTimeoutMs: number;
  /** Local cluster only: the coordinator's metrics port, worker i takes localWorkerMetricsPort(i, it); 0 / unset: free ports. */
  metricsPort?: number;
  /** Extra environment for the local cluster's processes. */
  env?: NodeJS.ProcessEnv;
  /** What the gradient all-reduce sends between workers (default none: float64 partial sums, exact). */
  gradCompression?: Compression;
}

/**
 * One epoch as `dtrain run --json` prints it (and, with the EpochRecord fields, as history.jsonl
 * stores it): the coordinator's EpochResult without the lr pushed for the next epoch; `epoch` is
 * 0-based, like history.jsonl.
 */
export type ClusterEpoch = Omit<EpochResult, 'nextLr'>;

export interface ClusterRunResult {
  workers: number;
  backend: string;
  device: string;
  size: number;
  /** What the gradient all-reduce sent between workers. */
  gradCompression: Compression;
  runDir: string;
  coordinator: string;
  startEpoch: number;
  epochs: ClusterEpoch[];
  testAcc: number;
  testLoss: number;
  perClassAcc: Record<string, number>;
  checkpoint: string;
  /** Every time the job lost workers (or took in new ones) and continued. */
  regroups: Regrouped[];
  /** The processes of the local cluster started for this run (all stopped when it returns). */
  localPids: number[];
}

export interface ClusterRunEvents {
  onLocalCluster?(c: {address: string; pids: number[]; logDir: string}): void;
  onAccepted?(a: JobAccepted & {address: string; local: boolean}): void;
  onStep?(s: StepDone): void;
  onEpoch?(e: ClusterEpoch): void;
  onRegrouped?(r: Regrouped): void;
  onPaused?(p: Paused): void;
}

/**
 * `dtrain run` on a cluster: submits the job to --coordinator, or starts a local coordinator and N
 * workers for it and stops them afterwards (also on SIGINT/SIGTERM; children exit with this process
 * in any case). Writes RUN_DIR/history.jsonl with the single-process EpochRecord fields.
 */
export async function runOnCluster(options: ClusterRunOptions, events: ClusterRunEvents = {}): Promise<ClusterRunResult> {
  await mkdir(options.runDir, {recursive: true});
  const controller = new AbortController();
  const gradCompression = options.gradCompression ?? 'none';
  const cluster = options.coordinator
    ? undefined
    : await startLocalCluster({workers: options.workers, backend: options.backend, requireBackend: options.requireBackend, precision: options.precision, detach: false, logDir: join(options.runDir, 'cluster-logs'), heartbeatTimeoutMs: options.heartbeatTimeoutMs, metricsPort: options.metricsPort, env: options.env});
  if (cluster) events.onLocalCluster?.({address: cluster.address, pids: cluster.processes.map((p) => p.pid), logDir: join(options.runDir, 'cluster-logs')});
  let interrupted: string | undefined;
  let history = Promise.resolve();
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // A local worker that exits before the job starts (e.g. --require-backend refused this machine), or
  // at any time when the job is not elastic, fails the run at once with the end of its log, instead
  // of waiting out the coordinator. An elastic job survives it: the coordinator regroups.
  let workerExit: Promise<string> | undefined;
  let accepted: JobAccepted | undefined;
  const onWorkerExit = (info: ClusterProcessInfo) => () => {
    if (accepted && options.elastic) return;
    workerExit ??= readFile(info.log ?? '', 'utf8').then(
      (log) => `local worker (pid ${info.pid}) exited: ${log.trim().split('\n').filter((l) => !l.startsWith('Warning:')).slice(-2).join(' | ')}`,
      () => `local worker (pid ${info.pid}) exited`,
    );
    controller.abort();
  };
  // A coordinator that dies mid-job (crash, OOM kill) is named as such, not as its workers' exits.
  let coordinatorGone: string | undefined;
  const onCoordinatorExit = (info: ClusterProcessInfo) => (code: number | null, signal: NodeJS.Signals | null) => {
    coordinatorGone ??= `the local coordinator (pid ${info.pid}) exited (${signal ?? `code ${code}`})`;
    controller.abort();
  };
  const exitListeners = (cluster?.children ?? []).map((child, i) => {
    const info = cluster!.processes[i];
    const listener = info.role === 'worker' ? onWorkerExit(info) : onCoordinatorExit(info);
    child.once('exit', listener);
    return () => child.removeListener('exit', listener);
  });
  const address = options.coordinator ?? cluster!.address;
  const epochs: ClusterEpoch[] = [];
  const regroups: Regrouped[] = [];
  let finished: {testAcc: number; testLoss: number; perClassAcc: Record<string, number>; checkpoint: string} | undefined;
  try {
    await submitJob(
      address,
      cluster ? {token: cluster.token} : (options.security ?? {}),
      {
        workers: options.workers,
        hyper: {size: String(options.size), globalBatch: options.batchSize, lr: options.lr, momentum: options.momentum, weightDecay: options.weightDecay, seed: options.seed, augment: true, gradCompression},
        epochs: options.epochs,
        scheduler: options.scheduler,
        data: options.data,
        dataDir: options.dataDir ? resolve(options.dataDir) : '',
        trainLimit: options.trainLimit ?? 0,
        testLimit: options.testLimit ?? 0,
        checkpointDir: resolve(options.checkpointDir),
        resume: options.resume,
        backend: options.backend === 'auto' ? '' : options.backend,
        waitMs: cluster ? 120_000 : 30_000,
        runDir: '',
        keepCheckpoints: options.keepCheckpoints ?? 0,
        failOnWorkerLoss: !options.elastic,
        minWorkers: options.minWorkers,
        rejoinTimeoutMs: options.rejoinTimeoutMs,
      },
      (p) => {
        if (p.accepted) {
          accepted = p.accepted;
          events.onAccepted?.({...p.accepted, address, local: !cluster});
        }
        if (p.step) events.onStep?.(p.step);
        if (p.regrouped) {
          regroups.push(p.regrouped);
          events.onRegrouped?.(p.regrouped);
        }
        if (p.paused) events.onPaused?.(p.paused);
        if (p.epoch) {
          const e = toEpoch(p.epoch);
          epochs.push(e);
          // history.jsonl: the single-process EpochRecord fields (dtrain plot reads them), plus cluster extras.
          const record = {
            epoch: e.epoch,
            trainLoss: e.trainLoss,
            trainAccuracy: e.trainAcc,
            images: e.images,
            steps: e.steps,
            seconds: e.seconds,
            imagesPerSec: e.imagesPerSec,
            lr: e.lr,
            testLoss: e.testLoss,
            testAccuracy: e.testAcc,
            perClass: e.perClassAcc,
            checkpoint: e.checkpoint,
            workers: e.workers,
            lostSteps: e.lostSteps,
            allreduceSeconds: e.allreduceSeconds,
            gradCompression,
          };
          history = history.then(() => appendFile(join(options.runDir, 'history.jsonl'), JSON.stringify(record) + '\n'));
          events.onEpoch?.(e);
        }
        if (p.finished) finished = {testAcc: p.finished.testAcc, testLoss: p.finished.testLoss, perClassAcc: p.finished.perClassAcc, checkpoint: p.finished.checkpoint};
      },
      controller.signal,
    );
  } catch (error) {
    const dropped = accepted !== undefined && error instanceof UserError && error.exitCode === ExitCode.network;
    if (coordinatorGone === undefined && dropped) coordinatorGone = error.message.replace(/^cannot reach the coordinator at \S+: /, '');
    if (coordinatorGone === undefined && !workerExit) throw error;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    for (const remove of exitListeners) remove();
    await cluster?.stop();
    await history;
  }
  if (coordinatorGone !== undefined) {
    const when = accepted ? `during epoch ${accepted.startEpoch + epochs.length + 1}` : 'before the job started';
    throw new UserError(`lost the coordinator at ${address} ${when}: ${coordinatorGone}; the checkpoints of finished epochs are in ${resolve(options.checkpointDir)}${cluster ? '' : " on the coordinator's machine"}`, {
      exitCode: ExitCode.network,
      suggestion: `${cluster ? '' : 'restart the coordinator, then '}rerun the same command with --resume`,
    });
  }
  if (workerExit) throw new UserError(await workerExit, {suggestion: `see the logs in ${join(options.runDir, 'cluster-logs')}`});
  if (interrupted) process.exitCode = 130;
  const w0 = accepted?.workers[0];
  const perClassAcc = finished?.perClassAcc ?? {};
  return {
    workers: epochs.at(-1)?.workers ?? options.workers,
    backend: w0?.backend ?? '',
    device: w0?.device ?? '',
    size: options.size,
    gradCompression,
    runDir: options.runDir,
    coordinator: address,
    startEpoch: accepted?.startEpoch ?? 0,
    epochs,
    testAcc: finished?.testAcc ?? Number.NaN,
    testLoss: finished?.testLoss ?? Number.NaN,
    perClassAcc: Object.fromEntries(CIFAR10_CLASSES.map((c) => [c, perClassAcc[c] ?? Number.NaN])),
    checkpoint: finished?.checkpoint ?? '',
    regroups,
    localPids: cluster?.processes.map((p) => p.pid) ?? [],
  };
}

function toEpoch(r: EpochResult): ClusterEpoch {
  return {
    epoch: r.epoch,
    trainLoss: r.trainLoss,
    trainAcc: r.trainAcc,
    testLoss: r.testLoss,
    testAcc: r.testAcc,
    lr: r.lr,
    imagesPerSec: r.imagesPerSec,
    seconds: r.seconds,
    images: r.images,
    steps: r.steps,
    allreduceSeconds: r.allreduceSeconds,
    checkpoint: r.checkpoint,
    perClassAcc: Object.fromEntries(CIFAR10_CLASSES.map((c) => [c, r.perClassAcc[c] ?? Number.NaN])),
    lostSteps: r.lostSteps,
    workers: r.workers,
  };
}
