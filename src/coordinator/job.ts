import {appendFile, mkdir} from 'node:fs/promises';
import {join} from 'node:path';

import {type CurveKeyPair, newCurveKeyPair} from '../allreduce/curve.js';
import {CIFAR10_CLASSES, type DataSource, resolveDataset} from '../data/index.js';
import type {CoordinatorCommand, EpochDone, EpochResult, JobInfo, JobProgress, JobSpec, StartJob, WorkerMessage} from '../gen/dtrain.js';
import {createScheduler} from '../optim/schedulers.js';
import {nonFiniteEpochMessage, nonFiniteLossMessage} from '../worker/divergence.js';
import {type CheckpointContent, DEFAULT_KEEP_CHECKPOINTS, readLatestCheckpoint, writeCheckpoint} from './checkpoint.js';
import {encodeDatasetBlob} from './dataset-blob.js';
import type {WorkerEntry} from './registry.js';
import {type EpochSegment, ShardPlan} from './shard-plan.js';

export type JobState = 'pending' | 'running' | 'completed' | 'failed';

type Kind = 'ringBound' | 'ready' | 'epochDone' | 'halted';

/** Longest silence of a job's workers while the coordinator waits for an answer (progress messages reset it). */
export const JOB_STALL_TIMEOUT_MS: Record<Kind, number> = {ringBound: 10 * 60_000, ready: 2 * 60_000, epochDone: 10 * 60_000, halted: 2 * 60_000};
export const DEFAULT_REJOIN_TIMEOUT_MS = 120_000;

/** Everything a job runner needs from the coordinator. */
export interface JobContext {
  publishDataset(hash: string, blob: Buffer): void;
  /** Registered workers with no job, oldest first (newcomers for a regroup). */
  idleWorkers(): WorkerEntry[];
  log(line: string): void;
}

/** A worker of the job was lost while the job can continue without it: the wait is interrupted for a regroup. */
class WorkersLost extends Error {
  constructor() {
    super('a worker of the job was lost');
  }
}

interface Lost {
  worker: WorkerEntry;
  /** "worker-2 (rank 1 on host h)" */
  who: string;
  why: string;
}

/**
 * One training job: pending → running → completed | failed. Talks to its workers only through their
 * session streams (commands down, events up) and never touches tensors: it relays rank 0's bytes,
 * aggregates per-rank sums, owns the LR scheduler and writes checkpoints.
 *
 * Elastic (the default): a worker lost mid-job does not fail it. The others are halted (their step
 * in flight undone), rolled back to the last step all of them completed, re-ranked into a new ring
 * (newcomers too when the job pauses for --min-workers or at an epoch boundary) and continue the
 * rest of the epoch with the same global batch (continuedPlan in shard-plan.ts).
 */
export class Job {
  state: JobState = 'pending';
  epoch = 0;
  error?: string;
  private waiting?: {kind: Kind; to: WorkerEntry[]; got: Map<WorkerEntry, WorkerMessage>; resolve: (m: WorkerMessage[]) => void; reject: (e: Error) => void; touch: () => void};
  private failure?: Error;
  /** Weights file of the newest checkpoint this job resumed from or wrote (named by failures). */
  private lastGood?: string;
  /** The lr of the running epoch (named by a divergence failure). */
  private lr = 0;
  /** The job's workers in rank order. */
  private members: WorkerEntry[] = [];
  /** Members whose ring and replica are set up (they hold the job's state). */
  private readonly established = new Set<WorkerEntry>();
  /** Losses not yet handled by a regroup (or, while the job starts, by starting again). */
  private lost: Lost[] = [];
  private lostAt = 0;
  private generation = 0;
  private datasetStart?: Omit<StartJob, 'rank' | 'worldSize' | 'ringPublicKey' | 'ringSecretKey' | 'ringPublicKeys'>;
  /** Each member's CURVE key pair for the ring, issued when it first joins the job. */
  private readonly ringKeys = new Map<WorkerEntry, CurveKeyPair>();

  constructor(
    readonly id: string,
    readonly spec: JobSpec,
    private readonly ctx: JobContext,
    private readonly emit: (p: JobProgress) => void,
  ) {}

  info(): JobInfo {
    return {jobId: this.id, state: this.state, epoch: this.epoch, epochs: this.spec.epochs, error: this.error ?? '', workers: this.members.length};
  }

  /** Fails the job from outside (a worker died, the client went away, shutdown). */
  fail(error: Error): void {
    this.failure ??= error;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(error);
  }

  private who(w: WorkerEntry): string {
    return `worker ${w.id} (rank ${this.members.indexOf(w)} on ${w.info.host || 'an unknown host'})`;
  }

  /** The StartJob for member w at `rank`: the job, its CURVE key pair, and every member's public key in rank order. */
  private startCommand(w: WorkerEntry, rank: number, worldSize: number): CoordinatorCommand {
    const keys = this.ringKeysOf(w);
    return {start: {...this.datasetStart!, rank, worldSize, ringPublicKey: keys.publicKey, ringSecretKey: keys.secretKey, ringPublicKeys: this.ringPeers()}};
  }

  /** Fresh CURVE keys per member and job: a rank's inbox accepts only its predecessor's key (src/allreduce/curve.ts). */
  private ringKeysOf(w: WorkerEntry): CurveKeyPair {
    let keys = this.ringKeys.get(w);
    if (!keys) {
      keys = newCurveKeyPair();
      this.ringKeys.set(w, keys);
    }
    return keys;
  }

  private ringPeers(): string[] {
    return this.members.map((m) => this.ringKeysOf(m).publicKey);
  }

  private attach(w: WorkerEntry): void {
    w.state = 'busy';
    w.jobId = this.id;
    w.onMessage = (m) => this.onMessage(w, m);
    w.onLost = (why) => this.onLost(w, why);
  }

  private onLost(w: WorkerEntry, why: string): void {
    const who = this.who(w);
    if (this.spec.failOnWorkerLoss) {
      this.fail(new Error(`${who} lost: ${why}`));
      return;
    }
    this.ctx.log(`job ${this.id}: ${who} lost: ${why}; the job continues with the others`);
    this.lost.push({worker: w, who, why});
    this.lostAt ||= Date.now();
    const waiting = this.waiting;
    if (waiting?.to.includes(w)) {
      this.waiting = undefined;
      waiting.reject(new WorkersLost());
    }
  }

  private onMessage(w: WorkerEntry, msg: WorkerMessage): void {
    if (msg.error) {
      this.fail(new Error(`${this.who(w)} failed: ${msg.error.message}`));
      return;
    }
    if (msg.nonFiniteLoss) {
      this.fail(new Error(nonFiniteLossMessage(msg.nonFiniteLoss, {rank: this.members.indexOf(w), lastGood: this.lastGood, lr: this.lr, resumable: true})));
      return;
    }
    const waiting = this.waiting;
    waiting?.touch();
    if (msg.step) {
      if (msg.step.jobId === this.id) this.emit({step: msg.step});
      return;
    }
    const kind: Kind | undefined = msg.ringBound ? 'ringBound' : msg.ready ? 'ready' : msg.epochDone ? 'epochDone' : msg.halted ? 'halted' : undefined;
    if (!kind || !waiting || !waiting.to.includes(w)) return;
    // A rank that finished its epoch before the halt reached it: its result is superseded.
    if (kind === 'epochDone' && waiting.kind === 'halted') return;
    if (kind !== waiting.kind) {
      this.fail(new Error(`${this.who(w)} sent ${kind} while the job waited for ${waiting.kind}`));
      return;
    }
    waiting.got.set(w, msg);
    if (waiting.got.size === waiting.to.length) {
      this.waiting = undefined;
      waiting.resolve(waiting.to.map((m) => waiting.got.get(m)!));
    }
  }

  /**
   * Sends a command to each of `to` and waits for one `kind` event from each; bounded by a stall
   * timeout (any message of the job resets it) that names the ranks still silent.
   */
  private async roundTrip(kind: Kind, to: WorkerEntry[], command: (w: WorkerEntry, i: number) => CoordinatorCommand): Promise<WorkerMessage[]> {
    if (this.failure) throw this.failure;
    if (this.lost.some((l) => to.includes(l.worker))) throw new WorkersLost();
    const limit = JOB_STALL_TIMEOUT_MS[kind];
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<WorkerMessage[]>((resolve, reject) => {
      const expire = () => {
        const silent = to.filter((w) => !this.waiting?.got.has(w)).map((w) => this.who(w));
        this.fail(new Error(`no ${kind} from ${silent.join(', ')} for ${limit / 1000} s (alive by heartbeat, but stuck); the job stops`));
      };
      const touch = () => {
        clearTimeout(timer);
        timer = setTimeout(expire, limit);
        timer.unref();
      };
      this.waiting = {kind, to, got: new Map(), resolve, reject, touch};
      touch();
    });
    to.forEach((w, i) => w.stream?.write(command(w, i)));
    try {
      return await done;
    } finally {
      clearTimeout(timer);
    }
  }

  async run(workers: WorkerEntry[]): Promise<void> {
    const spec = this.spec;
    const hyper = spec.hyper!;
    this.members = [...workers];
    for (const w of workers) this.attach(w);
    this.members.forEach((w, rank) => (w.rank = rank));
    try {
      this.state = 'running';
      const {train, test, source} = await resolveDataset({data: spec.data as DataSource, dir: spec.dataDir || undefined, trainLimit: spec.trainLimit || undefined, testLimit: spec.testLimit || undefined});
      const {blob, hash} = encodeDatasetBlob(train, test);
      this.ctx.publishDataset(hash, blob);
      this.datasetStart = {jobId: this.id, hyper, datasetHash: hash, trainCount: train.count, testCount: test.count, backend: spec.backend};
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
      const N = workers.length;
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
      // A loss while the job starts: start again with whoever is left (no replica holds a state yet).
      const restart = {lost: [] as string[], joined: [] as string[]};
      let restarting = false;
      for (;;) {
        try {
          if (restarting) {
            this.dropLost(restart.lost);
            if (this.members.length === 0) throw new Error(`every worker was lost while the job started (${restart.lost.join('; ')})`);
            const before = new Set(this.members);
            await this.waitForMembers(startEpoch, true);
            restart.joined.push(...this.members.filter((w) => !before.has(w)).map((w) => w.id));
            this.members.forEach((w, rank) => (w.rank = rank));
            this.generation++;
            this.ctx.log(`job ${this.id}: starting again with ${this.members.length} worker${this.members.length === 1 ? '' : 's'}; lost ${restart.lost.join('; ')}`);
          }
          const n = this.members.length;
          const bound = await this.roundTrip('ringBound', this.members, (w, rank) => this.startCommand(w, rank, n));
          const endpoints = bound.map((m) => m.ringBound!.endpoint);
          const initial = bound[0].ringBound!.initialState;
          const ready = await this.roundTrip('ready', this.members, (_, rank) => ({
            connect: {
              jobId: this.id,
              successorEndpoint: endpoints[(rank + 1) % n],
              ringEndpoints: endpoints,
              state: resumed ? resumed.weights : rank === 0 ? Buffer.alloc(0) : initial,
              optimizer: resumed ? resumed.optimizer : Buffer.alloc(0),
              generation: this.generation,
            },
          }));
          this.checkChecksums(ready.map((m) => m.ready!.checksum), 'after the initial broadcast');
          break;
        } catch (err) {
          if (!(err instanceof WorkersLost)) throw err;
          restarting = true;
        }
      }
      for (const w of this.members) this.established.add(w);
      if (restart.lost.length > 0) {
        this.emit({regrouped: {epoch: startEpoch, step: 0, lostSteps: 0, lost: restart.lost, joined: restart.joined, workers: this.members.length, detectedAtMs: this.lostAt, resumedAtMs: Date.now()}});
        this.lostAt = 0;
      }
      let last: {testLoss: number; testAcc: number; perClass: Record<string, number>; checkpoint: string} | undefined;
      for (let epoch = startEpoch; epoch < spec.epochs; epoch++) {
        this.epoch = epoch;
        this.lr = lr;
        const started = performance.now();
        // Epoch boundary: replace the lost, take in idle workers up to the requested count.
        if (this.lost.length > 0 || (this.members.length < spec.workers && this.ctx.idleWorkers().length > 0)) await this.recover(epoch, true);
        const segments: EpochSegment[] = [];
        let lostSteps = 0;
        let done: EpochDone[];
        for (;;) {
          const worldSize = this.members.length;
          try {
            done = (await this.roundTrip('epochDone', this.members, () => ({runEpoch: {jobId: this.id, epoch, lr, checkpoint: true, doneSegments: segments}}))).map((m) => m.epochDone!);
            break;
          } catch (err) {
            if (!(err instanceof WorkersLost)) throw err;
          }
          const r = await this.recover(epoch, false, {segments, worldSize});
          lostSteps += r.lostSteps;
        }
        this.checkChecksums(done.map((d) => d.checksum), `after epoch ${epoch + 1}`);
        const result = aggregate(done, epoch, lr);
        const diverged = nonFiniteEpochMessage(epoch, result.trainLoss, result.testLoss, {lastGood: this.lastGood, lr, resumable: true});
        if (diverged) throw new Error(diverged);
        result.lostSteps = lostSteps;
        const M = this.members.length;
        trainLosses.push(result.trainLoss);
        const nextLr = scheduler.step(epoch, result.trainLoss);
        const state: CheckpointContent = {
          epoch: epoch + 1,
          epochs: spec.epochs,
          size: hyper.size,
          seed: hyper.seed,
          hyper: {globalBatch: hyper.globalBatch, lr: hyper.lr, momentum: hyper.momentum, weightDecay: hyper.weightDecay},
          scheduler: {name: scheduler.name, state: scheduler.state(), nextLr, trainLosses},
          dataOrder: {sampler: 'distributed', seed: hyper.seed, workers: M, nextEpoch: epoch + 1, datasetHash: hash},
        };
        const files = await writeCheckpoint(checkpointDir, state, done[0].weights, done[0].optimizer, {keep, lastGood: this.lastGood});
        this.lastGood = files.weights;
        if (files.pruned.length > 0) this.ctx.log(`job ${this.id}: kept the ${keep} newest checkpoints, deleted ${files.pruned.length} older files`);
        result.checkpoint = files.weights;
        result.nextLr = nextLr;
        const wall = (performance.now() - started) / 1000;
        this.ctx.log(`job ${this.id}: epoch ${epoch + 1}/${spec.epochs} train loss ${result.trainLoss.toFixed(4)} test acc ${(100 * result.testAcc).toFixed(2)}% with ${M} workers${lostSteps ? `, ${lostSteps} lost step${lostSteps === 1 ? '' : 's'}` : ''} (${wall.toFixed(1)} s)`);
        if (spec.runDir) {
          await mkdir(spec.runDir, {recursive: true});
          await appendFile(join(spec.runDir, 'coordinator-history.jsonl'), JSON.stringify({jobId: this.id, ...result, wallSeconds: wall, gradCompression: hyper.gradCompression || 'none'}) + '\n');
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
      for (const w of new Set([...workers, ...this.members, ...this.lost.map((l) => l.worker)])) {
        if (w.jobId !== this.id) continue;
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

  /**
   * After losses (or at an epoch boundary, to take in idle workers): halt the survivors, agree on the
   * last step they all completed, pause for --min-workers if too few are left, and re-form the ring
   * (new ranks, new endpoints, newcomers loaded with rank 0's weights and momentum); the replicas'
   * checksums must agree. Further losses on the way start it over. Mid-epoch, appends the ended
   * segment (its world size and the steps every survivor completed) to `ended.segments`.
   */
  private async recover(epoch: number, boundary: boolean, ended?: {segments: EpochSegment[]; worldSize: number}): Promise<{lostSteps: number}> {
    const lostNames: string[] = [];
    const joined: string[] = [];
    let lostSteps = 0;
    let stepsDone = 0;
    let halted = false;
    for (;;) {
      try {
        this.dropLost(lostNames);
        const holders = this.members.filter((w) => this.established.has(w));
        if (holders.length === 0) throw new Error(`every worker holding the job's state was lost (${lostNames.join('; ')}); continue from the last checkpoint with --resume`);
        if (!halted) {
          // At an epoch boundary the workers are past the halted epoch: they undo nothing, and report where they stand.
          const answers = (await this.roundTrip('halted', holders, () => ({halt: {jobId: this.id, reason: lostNames.join('; ') || 'regroup', epoch}}))).map((m) => m.halted!);
          stepsDone = Math.min(...answers.map((h) => h.stepsDone));
          // Progress thrown away: the steps a survivor had completed beyond the common point, or else
          // the step in flight. The ring keeps survivors within one step of each other, so at most 1.
          lostSteps = Math.max(...answers.map((h) => h.stepsDone - stepsDone), answers.some((h) => h.inFlight) ? 1 : 0);
          ended?.segments.push({worldSize: ended.worldSize, steps: stepsDone});
          halted = true;
        }
        await this.waitForMembers(epoch, boundary);
        const newcomers = this.members.filter((w) => !this.established.has(w));
        // Holders first: rank 0 holds the state the newcomers load.
        this.members = [...this.members.filter((w) => this.established.has(w)), ...newcomers];
        this.members.forEach((w, rank) => (w.rank = rank));
        const N = this.members.length;
        const bound = await this.roundTrip('ringBound', this.members, (w, rank) =>
          this.established.has(w) ? {regroup: {jobId: this.id, rank, worldSize: N, stepsDone, sendState: rank === 0 && newcomers.length > 0, ringPublicKeys: this.ringPeers()}} : this.startCommand(w, rank, N),
        );
        const endpoints = bound.map((m) => m.ringBound!.endpoint);
        const {initialState, optimizer} = bound[0].ringBound!;
        this.generation++;
        const ready = await this.roundTrip('ready', this.members, (w, rank) => ({
          connect: {
            jobId: this.id,
            successorEndpoint: endpoints[(rank + 1) % N],
            ringEndpoints: endpoints,
            state: this.established.has(w) ? Buffer.alloc(0) : initialState,
            optimizer: this.established.has(w) ? Buffer.alloc(0) : optimizer,
            generation: this.generation,
          },
        }));
        this.checkChecksums(ready.map((m) => m.ready!.checksum), `after the regroup in epoch ${epoch + 1}`);
        for (const w of newcomers) {
          this.established.add(w);
          joined.push(w.id);
        }
        break;
      } catch (err) {
        if (!(err instanceof WorkersLost)) throw err;
      }
    }
    if (boundary) lostSteps = 0;
    const resumedAt = Date.now();
    const detectedAt = this.lostAt || resumedAt;
    this.lostAt = 0;
    const doneBefore = (ended?.segments ?? []).reduce((a, s) => a + s.steps, 0);
    this.ctx.log(
      `job ${this.id}: continuing with ${this.members.length} worker${this.members.length === 1 ? '' : 's'} in epoch ${epoch + 1}` +
        (boundary ? ' from its start' : ` after step ${doneBefore}, ${lostSteps} lost step${lostSteps === 1 ? '' : 's'}`) +
        (lostNames.length ? `; lost ${lostNames.join('; ')}` : '') +
        (joined.length ? `; joined ${joined.join(', ')}` : '') +
        ` (${((resumedAt - detectedAt) / 1000).toFixed(1)} s to resume)`,
    );
    this.emit({regrouped: {epoch, step: doneBefore, lostSteps, lost: lostNames, joined, workers: this.members.length, detectedAtMs: detectedAt, resumedAtMs: resumedAt}});
    return {lostSteps};
  }

  /** Takes the lost out of the members (their names into `names`). */
  private dropLost(names: string[]): void {
    for (const l of this.lost) {
      names.push(`${l.who}: ${l.why}`);
      this.established.delete(l.worker);
      l.worker.onMessage = undefined;
      l.worker.onLost = undefined;
      l.worker.jobId = undefined;
    }
    this.members = this.members.filter((w) => !this.lost.some((l) => l.worker === w));
    this.lost = [];
  }

  /**
   * Fewer members than --min-workers: pause until idle workers make up the number (they join at the
   * resume point), or fail after the rejoin timeout. At an epoch boundary, idle workers also fill the
   * job up to the requested size.
   */
  private async waitForMembers(epoch: number, boundary: boolean): Promise<void> {
    const need = Math.max(1, this.spec.minWorkers);
    const timeoutMs = this.spec.rejoinTimeoutMs || DEFAULT_REJOIN_TIMEOUT_MS;
    const take = (upTo: number) => {
      for (const w of this.ctx.idleWorkers().slice(0, Math.max(0, upTo - this.members.length))) {
        this.members.push(w);
        this.attach(w);
      }
    };
    if (boundary) take(this.spec.workers);
    if (this.members.length >= need) return;
    const deadline = Date.now() + timeoutMs;
    this.ctx.log(`job ${this.id}: waiting for workers: have ${this.members.length}, need ${need}, timeout ${timeoutMs / 1000} s (start one with \`dtrain worker --coordinator HOST:PORT\`)`);
    this.emit({paused: {epoch, have: this.members.length, need, timeoutS: Math.round(timeoutMs / 1000)}});
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.lost.length > 0) throw new WorkersLost();
      take(Math.max(need, this.spec.workers));
      if (this.members.length >= need) return;
      if (Date.now() > deadline) {
        throw new Error(
          `waiting for workers timed out: have ${this.members.length}, need ${need} (--min-workers) after ${timeoutMs / 1000} s; ` +
            (epoch > 0 ? `epochs 1–${epoch} are checkpointed in ${this.spec.checkpointDir}: continue with --resume once enough workers are registered` : 'no epoch was completed yet: start the job again once enough workers are registered'),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
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
    lostSteps: 0,
    workers: done.length,
  };
}
