import {appendFile, mkdir} from 'node:fs/promises';
import {join} from 'node:path';

import {newCurveKeyPair} from '../allreduce/curve.js';
import {CIFAR10_CLASSES, type DataSource, resolveDataset} from '../data/index.js';
import type {CoordinatorCommand, EpochDone, EpochResult, JobInfo, JobProgress, JobSpec, WorkerMessage} from '../gen/dtrain.js';
import {createScheduler} from '../optim/schedulers.js';
import {nonFiniteEpochMessage, nonFiniteLossMessage} from '../worker/divergence.js';
import {type CheckpointContent, DEFAULT_KEEP_CHECKPOINTS, readLatestCheckpoint, writeCheckpoint} from './checkpoint.js';
import {encodeDatasetBlob} from './dataset-blob.js';
import type {WorkerEntry} from './registry.js';
import {ShardPlan} from './shard-plan.js';

export type JobState = 'pending' | 'running' | 'completed' | 'failed';

type Kind = 'ringBound' | 'ready' | 'epochDone';

/** Everything a job runner needs from the coordinator. */
export interface JobContext {
  publishDataset(hash: string, blob: Buffer): void;
  log(line: string): void;
}

/**
 * One training job: pending → running → completed | failed. Talks to its workers only through their
 * session streams (commands down, events up) and never touches tensors: it relays rank 0's bytes,
 * aggregates per-rank sums, owns the LR scheduler and writes checkpoints.
 */
export class Job {
  state: JobState = 'pending';
  epoch = 0;
  error?: string;
  private waiting?: {kind: Kind; got: Map<number, WorkerMessage>; resolve: (m: WorkerMessage[]) => void; reject: (e: Error) => void};
  private failure?: Error;
  private workers: WorkerEntry[] = [];
  /** Weights file of the newest checkpoint this job resumed from or wrote (named by failures). */
  private lastGood?: string;
  /** The lr of the running epoch (named by a divergence failure). */
  private lr = 0;

  constructor(
    readonly id: string,
    readonly spec: JobSpec,
    private readonly ctx: JobContext,
    private readonly emit: (p: JobProgress) => void,
  ) {}

  info(): JobInfo {
    return {jobId: this.id, state: this.state, epoch: this.epoch, epochs: this.spec.epochs, error: this.error ?? '', workers: this.workers.length};
  }

  /** Fails the job from outside (a worker died, the client went away, shutdown). */
  fail(error: Error): void {
    this.failure ??= error;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(error);
  }

  private onMessage(rank: number, msg: WorkerMessage): void {
    if (msg.error) {
      this.fail(new Error(`worker ${this.workers[rank].id} (rank ${rank}) failed: ${msg.error.message}`));
      return;
    }
    if (msg.nonFiniteLoss) {
      this.fail(new Error(nonFiniteLossMessage(msg.nonFiniteLoss, {rank, lastGood: this.lastGood, lr: this.lr, resumable: true})));
      return;
    }
    if (msg.step) {
      if (msg.step.jobId === this.id) this.emit({step: msg.step});
      return;
    }
    const w = this.waiting;
    const kind: Kind | undefined = msg.ringBound ? 'ringBound' : msg.ready ? 'ready' : msg.epochDone ? 'epochDone' : undefined;
    if (!kind || !w) return;
    if (kind !== w.kind) {
      this.fail(new Error(`worker ${this.workers[rank].id} (rank ${rank}) sent ${kind} while the job waited for ${w.kind}`));
      return;
    }
    w.got.set(rank, msg);
    if (w.got.size === this.workers.length) {
      this.waiting = undefined;
      w.resolve(this.workers.map((_, r) => w.got.get(r)!));
    }
  }

  /** Sends a command to every rank and waits for one `kind` event from each. */
  private async roundTrip(kind: Kind, command: (rank: number) => CoordinatorCommand): Promise<WorkerMessage[]> {
    if (this.failure) throw this.failure;
    const done = new Promise<WorkerMessage[]>((resolve, reject) => {
      this.waiting = {kind, got: new Map(), resolve, reject};
    });
    this.workers.forEach((w, rank) => w.stream?.write(command(rank)));
    return done;
  }

  async run(workers: WorkerEntry[]): Promise<void> {
    const spec = this.spec;
    const hyper = spec.hyper!;
    this.workers = workers;
    const N = workers.length;
    workers.forEach((w, rank) => {
      w.state = 'busy';
      w.jobId = this.id;
      w.rank = rank;
      w.onMessage = (m) => this.onMessage(rank, m);
      w.onLost = (why) => this.fail(new Error(`worker ${w.id} (rank ${rank}) lost: ${why}`));
    });
    try {
      this.state = 'running';
      const {train, test, source} = await resolveDataset({data: spec.data as DataSource, dir: spec.dataDir || undefined, trainLimit: spec.trainLimit || undefined, testLimit: spec.testLimit || undefined});
      const {blob, hash} = encodeDatasetBlob(train, test);
      this.ctx.publishDataset(hash, blob);
      const checkpointDir = spec.checkpointDir;
      const keep = spec.keepCheckpoints || DEFAULT_KEEP_CHECKPOINTS;
      // What resuming found (refused checkpoints, none at all): logged here and told to the client.
      const checkpointNotes: string[] = [];
      const note = (line: string) => {
        checkpointNotes.push(line);
        this.ctx.log(`job ${this.id}: ${line}`);
      };
      const resumed = spec.resume ? await readLatestCheckpoint(checkpointDir, note) : undefined;
      this.lastGood = resumed?.path;
      if (spec.resume && !resumed) note(`--resume but no checkpoint in ${checkpointDir}; starting at epoch 1`);
      if (resumed && resumed.state.size !== hyper.size) throw new Error(`checkpoint ${resumed.path} is size ${resumed.state.size}, the job asks for size ${hyper.size}`);
      const scheduler = createScheduler(spec.scheduler, hyper.lr, spec.epochs);
      const trainLosses: number[] = [];
      let lr = hyper.lr;
      // The scheduler is a pure function of the train losses: replaying them restores it exactly.
      for (const [e, loss] of (resumed?.state.scheduler.trainLosses ?? []).entries()) {
        trainLosses.push(loss);
        lr = scheduler.step(e, loss);
      }
      const startEpoch = resumed?.state.epoch ?? 0;
      const plan0 = new ShardPlan({count: train.count, worldSize: N, globalBatch: hyper.globalBatch, seed: hyper.seed, epoch: startEpoch});
      this.emit({
        accepted: {
          jobId: this.id,
          workers: workers.map((w) => ({workerId: w.id, host: w.info.host, backend: w.info.backend, device: w.info.device, state: 'busy', rank: w.rank ?? 0, jobId: this.id, lastHeartbeatMsAgo: 0, pid: w.info.pid, dtrainVersion: w.info.dtrainVersion, metricsUrl: w.info.metricsUrl})),
          trainCount: train.count,
          testCount: test.count,
          source,
          startEpoch,
          stepsPerEpoch: plan0.steps,
          rankBatch: workers.map((_, r) => plan0.rankBatch(r)),
          checkpointNotes,
        },
      });
      // Fresh CURVE keys per job: a rank's inbox accepts only its predecessor's key (src/allreduce/curve.ts).
      const ringKeys = Array.from({length: N}, () => newCurveKeyPair());
      const ringPublicKeys = ringKeys.map((k) => k.publicKey);
      const bound = await this.roundTrip('ringBound', (rank) => ({
        start: {jobId: this.id, rank, worldSize: N, hyper, datasetHash: hash, trainCount: train.count, testCount: test.count, backend: spec.backend, ringPublicKey: ringKeys[rank].publicKey, ringSecretKey: ringKeys[rank].secretKey, ringPublicKeys},
      }));
      const endpoints = bound.map((m) => m.ringBound!.endpoint);
      const initial = bound[0].ringBound!.initialState;
      const ready = await this.roundTrip('ready', (rank) => ({
        connect: {
          jobId: this.id,
          successorEndpoint: endpoints[(rank + 1) % N],
          ringEndpoints: endpoints,
          state: resumed ? resumed.weights : rank === 0 ? Buffer.alloc(0) : initial,
          optimizer: resumed ? resumed.optimizer : Buffer.alloc(0),
        },
      }));
      this.checkChecksums(ready.map((m) => m.ready!.checksum), 'after the initial broadcast');
      let last: {testLoss: number; testAcc: number; perClass: Record<string, number>; checkpoint: string} | undefined;
      for (let epoch = startEpoch; epoch < spec.epochs; epoch++) {
        this.epoch = epoch;
        this.lr = lr;
        const started = performance.now();
        const done = (await this.roundTrip('epochDone', () => ({runEpoch: {jobId: this.id, epoch, lr, checkpoint: true}}))).map((m) => m.epochDone!);
        this.checkChecksums(done.map((d) => d.checksum), `after epoch ${epoch + 1}`);
        const result = aggregate(done, epoch, lr);
        const diverged = nonFiniteEpochMessage(epoch, result.trainLoss, result.testLoss, {lastGood: this.lastGood, lr, resumable: true});
        if (diverged) throw new Error(diverged);
        trainLosses.push(result.trainLoss);
        const nextLr = scheduler.step(epoch, result.trainLoss);
        const state: CheckpointContent = {
          epoch: epoch + 1,
          epochs: spec.epochs,
          size: hyper.size,
          seed: hyper.seed,
          hyper: {globalBatch: hyper.globalBatch, lr: hyper.lr, momentum: hyper.momentum, weightDecay: hyper.weightDecay},
          scheduler: {name: scheduler.name, state: scheduler.state(), nextLr, trainLosses},
          dataOrder: {sampler: 'distributed', seed: hyper.seed, workers: N, nextEpoch: epoch + 1, datasetHash: hash},
        };
        const files = await writeCheckpoint(checkpointDir, state, done[0].weights, done[0].optimizer, {keep, lastGood: this.lastGood});
        this.lastGood = files.weights;
        if (files.pruned.length > 0) this.ctx.log(`job ${this.id}: kept the ${keep} newest checkpoints, deleted ${files.pruned.length} older files`);
        result.checkpoint = files.weights;
        result.nextLr = nextLr;
        const wall = (performance.now() - started) / 1000;
        this.ctx.log(`job ${this.id}: epoch ${epoch + 1}/${spec.epochs} train loss ${result.trainLoss.toFixed(4)} test acc ${(100 * result.testAcc).toFixed(2)}% (${wall.toFixed(1)} s)`);
        if (spec.runDir) {
          await mkdir(spec.runDir, {recursive: true});
          await appendFile(join(spec.runDir, 'coordinator-history.jsonl'), JSON.stringify({jobId: this.id, ...result, wallSeconds: wall}) + '\n');
        }
        this.emit({epoch: result});
        last = {testLoss: result.testLoss, testAcc: result.testAcc, perClass: result.perClassAcc, checkpoint: files.weights};
        lr = nextLr;
      }
      this.epoch = spec.epochs;
      this.state = 'completed';
      this.emit({finished: {jobId: this.id, testAcc: last?.testAcc ?? Number.NaN, testLoss: last?.testLoss ?? Number.NaN, perClassAcc: last?.perClass ?? {}, checkpoint: last?.checkpoint ?? resumed?.path ?? ''}});
    } catch (err) {
      this.state = 'failed';
      this.error = (err as Error).message;
      throw err;
    } finally {
      for (const w of workers) {
        if (w.state !== 'dead') {
          w.stream?.write({stop: {jobId: this.id, reason: this.error ?? 'completed'}});
          w.state = 'idle';
        }
        w.onMessage = undefined;
        w.onLost = undefined;
        w.jobId = undefined;
        w.rank = undefined;
      }
    }
  }

  private checkChecksums(sums: string[], when: string): void {
    const mismatch = checksumMismatch(sums);
    if (mismatch) throw new Error(`replica weights diverged ${when} (${mismatch}); the job stops rather than train inconsistent replicas`);
  }
}

/** undefined when every rank reports the same weights checksum, else which ranks hold which checksum. */
export function checksumMismatch(sums: string[]): string | undefined {
  const groups = new Map<string, number[]>();
  sums.forEach((s, r) => groups.set(s, [...(groups.get(s) ?? []), r]));
  if (groups.size <= 1) return undefined;
  return [...groups].map(([s, ranks]) => `rank${ranks.length > 1 ? 's' : ''} ${ranks.join(', ')}: ${s.slice(0, 12)}`).join(' vs ');
}

/** Per-rank sums → global epoch metrics (test set sharded without padding: every image counted once). */
export function aggregate(done: EpochDone[], epoch: number, lr: number): EpochResult {
  const sum = (f: (d: EpochDone) => number) => done.reduce((a, d) => a + f(d), 0);
  const trainCount = sum((d) => d.trainCount);
  const testCount = sum((d) => d.testCountPerClass.reduce((a, b) => a + b, 0));
  const perClassAcc: Record<string, number> = {};
  let testCorrect = 0;
  CIFAR10_CLASSES.forEach((name, c) => {
    const hits = sum((d) => d.testCorrectPerClass[c] ?? 0);
    const total = sum((d) => d.testCountPerClass[c] ?? 0);
    testCorrect += hits;
    perClassAcc[name] = total > 0 ? hits / total : Number.NaN;
  });
  const seconds = Math.max(...done.map((d) => d.seconds));
  return {
    epoch,
    trainLoss: sum((d) => d.trainLossSum) / trainCount,
    trainAcc: sum((d) => d.trainCorrect) / trainCount,
    testLoss: sum((d) => d.testLossSum) / testCount,
    testAcc: testCorrect / testCount,
    lr,
    nextLr: lr,
    imagesPerSec: trainCount / seconds,
    seconds,
    images: trainCount,
    perClassAcc,
    checkpoint: '',
    allreduceSeconds: sum((d) => d.allreduceSeconds) / done.length,
    steps: done[0].steps,
  };
}
