import {createHash} from 'node:crypto';

import * as tf from '@tensorflow/tfjs-core';

import {continuedPlan, type EpochSegment, evalShard} from '../coordinator/shard-plan.js';
import {type Dataset, IMAGE_BYTES, IMAGE_SIZE, makeBatch} from '../data/index.js';
import {disposeGradients, lossAndGradients} from '../model/gradients.js';
import {parseSafetensors, serializeSafetensors} from '../model/safetensors.js';
import type {ShuffleNetV2} from '../model/shufflenetv2.js';
import type {SGD} from '../optim/sgd.js';
import {Random} from '../util/random.js';
import {NonFiniteLossError} from './divergence.js';
import {epochSeed, type EvalSums, evalSums} from './trainer.js';

/**
 * What a replica needs from the ring: the elementwise mean over ranks, bitwise equal on every rank;
 * `{compression: 'none'}` asks for the exact mean whatever the ring's compression (BN statistics).
 */
export interface MeanReducer {
  allReduceMean(data: Float32Array, tag: {job: string; step: number}, call?: {compression?: 'none'}): Promise<Float32Array>;
}

export interface ReplicaOptions {
  /** Tags every all-reduce (with the regroup generation, so an old ring's messages never match). */
  jobId: string;
  rank: number;
  worldSize: number;
  globalBatch: number;
  seed: number;
  augment?: boolean;
}

export interface ReplicaStep {
  epoch: number;
  step: number;
  steps: number;
  loss: number;
  /** Images of this step over all ranks. */
  globalImages: number;
  /** Images of this step on this rank. */
  images: number;
  /** Wall time of this step on this rank (all-reduce and update included). */
  seconds: number;
}

export interface ReplicaEpoch {
  trainLossSum: number;
  trainCorrect: number;
  trainCount: number;
  steps: number;
  seconds: number;
  allreduceSeconds: number;
}

export type ReplicaEval = EvalSums;

/** Where a halted epoch stands on this rank. */
export interface ReplicaHalt {
  /** Steps completed in the current segment. */
  stepsDone: number;
  /** A step had started and was undone. */
  inFlight: boolean;
}

/** A copy of everything a step changes: weights, BN buffers, momentum. */
interface Snapshot {
  params: Map<string, tf.Tensor>;
  buffers: Map<string, tf.Tensor>;
  momentum: Map<string, tf.Tensor>;
}

interface StepTally {
  loss: number;
  correct: number;
  count: number;
  seconds: number;
  allreduceSeconds: number;
}

/** Augmentation draws per (seed, epoch, rank, segment); rank 0 of segment 0 draws exactly what a single process draws. */
export function rankAugmentSeed(seed: number, epoch: number, rank: number, segment = 0): number {
  return (epochSeed(seed, epoch, 'augment') + Math.imul(rank, 0x9e3779b1) + Math.imul(segment, 0x85ebca6b)) >>> 0;
}

/**
 * One data-parallel replica: per step, forward/backward on its slice of the global batch, the
 * gradients flattened in state_dict order into one Float32Array, scaled by its share of the batch
 * (ShardPlan.gradientScale), mean-all-reduced, unflattened, and the same SGD update as every other
 * replica. BN running statistics are averaged over the ranks at the end of each epoch.
 */
export class Replica {
  /** Calls to the reducer so far: every rank makes the same sequence, so this tags them uniquely. */
  private seq = 0;
  private readonly paramShapes: Array<[string, number[], number]>;
  readonly gradientSize: number;
  /**
   * The state before each of the last two steps of the current segment, with what each completed
   * step added to the tally. Two, because a peer can lose a step this rank completed (the ring lets a
   * rank finish step s while another still waits for its last chunks) while this rank is in step s+1.
   */
  private history: Array<{before: Snapshot; tally?: StepTally}> = [];
  private segmentSteps = 0;
  private inFlight = false;
  /** BN buffers before the epoch-end averaging, until the next epoch (a halt puts them back). */
  private beforeAverage?: Map<string, tf.Tensor>;
  /** Sums of the current epoch over every completed step of every segment. */
  private tally = {epoch: -1, lossSum: 0, correct: 0, count: 0, steps: 0, seconds: 0, allreduceSeconds: 0};

  constructor(
    readonly model: ShuffleNetV2,
    readonly optimizer: SGD,
    private reducer: MeanReducer,
    readonly options: ReplicaOptions,
  ) {
    this.paramShapes = [...model.params].map(([name, v]) => [name, v.shape, v.size]);
    this.gradientSize = this.paramShapes.reduce((a, [, , n]) => a + n, 0);
  }

  /** Continues in a re-formed ring at a new rank and world size (state and the epoch's tally kept). */
  regroup(reducer: MeanReducer, position: {jobId: string; rank: number; worldSize: number}): void {
    this.reducer = reducer;
    Object.assign(this.options, position);
    this.seq = 0;
  }

  /**
   * Undoes a step in flight and, while the epoch is open (not yet accepted by the coordinator), its
   * epoch-end BN averaging: the state is then the one after the last completed step.
   */
  halt(epochOpen: boolean): ReplicaHalt {
    const inFlight = this.inFlight;
    if (inFlight) {
      const before = this.history.pop()!.before;
      this.restore(before);
      disposeSnapshot(before);
      this.inFlight = false;
    }
    if (this.beforeAverage && epochOpen) {
      for (const [name, t] of this.beforeAverage) this.model.buffers.get(name)!.assign(t);
      disposeAll(this.beforeAverage);
      this.beforeAverage = undefined;
    }
    return {stepsDone: this.segmentSteps, inFlight};
  }

  /** After halt(): back to `stepsDone` completed steps of the segment (at most one step back). */
  rollBackTo(stepsDone: number): void {
    if (stepsDone === this.segmentSteps) return;
    const last = this.history.at(-1);
    if (stepsDone !== this.segmentSteps - 1 || !last?.tally) throw new Error(`cannot roll back from ${this.segmentSteps} to ${stepsDone} completed steps: only the last step's state is kept`);
    this.restore(last.before);
    const t = last.tally;
    this.tally.lossSum -= t.loss * t.count;
    this.tally.correct -= t.correct;
    this.tally.count -= t.count;
    this.tally.seconds -= t.seconds;
    this.tally.allreduceSeconds -= t.allreduceSeconds;
    this.tally.steps--;
    this.segmentSteps--;
    disposeSnapshot(this.history.pop()!.before);
  }

  private snapshot(): Snapshot {
    const clone = (m: Map<string, tf.Tensor>) => new Map([...m].map(([name, v]) => [name, tf.clone(v)]));
    return {params: clone(this.model.params), buffers: clone(this.model.buffers), momentum: this.optimizer.cloneMomentum()};
  }

  private restore(s: Snapshot): void {
    for (const [name, t] of s.params) this.model.params.get(name)!.assign(t);
    for (const [name, t] of s.buffers) this.model.buffers.get(name)!.assign(t);
    this.optimizer.restoreMomentum(s.momentum);
  }

  /** Frees the snapshots (end of the job). */
  dispose(): void {
    for (const h of this.history) disposeSnapshot(h.before);
    this.history = [];
    if (this.beforeAverage) disposeAll(this.beforeAverage);
    this.beforeAverage = undefined;
  }

  /** Mean over ranks of `data`, tagged with this job and the next sequence number; `exact`: never compressed. */
  private async reduce(data: Float32Array, exact = false): Promise<Float32Array> {
    return this.reducer.allReduceMean(data, {job: this.options.jobId, step: this.seq++}, exact ? {compression: 'none'} : undefined);
  }

  /** One data-parallel step on this rank's images (possibly none). */
  async step(x: Float32Array, labels: Int32Array, n: number, scale: number): Promise<{loss: number; correct: number; reduceSeconds: number}> {
    let flat: Float32Array;
    let loss = 0;
    let correct = 0;
    if (n > 0) {
      const xs = tf.tensor4d(x.subarray(0, n * IMAGE_BYTES), [n, IMAGE_SIZE, IMAGE_SIZE, 3]);
      const ys = tf.tensor1d(labels.subarray(0, n), 'int32');
      const result = lossAndGradients(this.model, xs, ys);
      const joined = tf.tidy(() => {
        const parts = this.paramShapes.map(([name]) => tf.reshape(result.grads.get(name)!, [-1]));
        const all = tf.concat(parts);
        return scale === 1 ? all : tf.mul(all, scale);
      });
      const hits = tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(result.logits, 1), ys), 'int32')));
      const [flatData, lossData, hitData] = await Promise.all([joined.data(), result.loss.data(), hits.data()]);
      flat = flatData as Float32Array;
      loss = lossData[0];
      correct = hitData[0];
      this.model.applyBatchStats(result.stats);
      disposeGradients(result);
      tf.dispose([xs, ys, joined, hits]);
    } else {
      flat = new Float32Array(this.gradientSize);
    }
    const t0 = performance.now();
    const mean = await this.reduce(flat);
    const reduceSeconds = (performance.now() - t0) / 1000;
    const grads = new Map<string, tf.Tensor>();
    let offset = 0;
    for (const [name, shape, size] of this.paramShapes) {
      grads.set(name, tf.tensor(mean.subarray(offset, offset + size), shape, 'float32'));
      offset += size;
    }
    this.optimizer.step(this.model.params, grads);
    tf.dispose([...grads.values()]);
    return {loss, correct, reduceSeconds};
  }

  /**
   * Trains this rank's part of the epoch: the whole epoch, or after a regroup what `segments` (the
   * epoch's earlier parts) left of it. The sums cover every completed step of the epoch on this rank.
   */
  async trainEpoch(ds: Dataset, epoch: number, lr: number, onStep?: (s: ReplicaStep) => void, segments: readonly EpochSegment[] = []): Promise<ReplicaEpoch> {
    const {rank, worldSize, globalBatch, seed} = this.options;
    this.optimizer.lr = lr;
    if (segments.length === 0 || this.tally.epoch !== epoch) this.tally = {epoch, lossSum: 0, correct: 0, count: 0, steps: 0, seconds: 0, allreduceSeconds: 0};
    for (const h of this.history) disposeSnapshot(h.before);
    this.history = [];
    this.segmentSteps = 0;
    if (this.beforeAverage) disposeAll(this.beforeAverage);
    this.beforeAverage = undefined;
    const plan = continuedPlan({count: ds.count, globalBatch, seed, epoch}, segments, worldSize);
    const shard = plan.shard(rank);
    const rng = new Random(rankAugmentSeed(seed, epoch, rank, segments.length));
    const b = plan.rankBatch(rank);
    const x = new Float32Array(b * IMAGE_BYTES);
    const labelsOut = new Int32Array(b);
    const done = segments.reduce((a, sg) => a + sg.steps, 0);
    for (let s = 0; s < plan.steps; s++) {
      const stepStart = performance.now();
      const indices = plan.stepIndices(rank, s, shard);
      const batch = indices.length > 0 ? makeBatch(ds, indices, {augment: this.options.augment ?? true, rng, out: {x, labels: labelsOut}}) : {x, labels: labelsOut, n: 0};
      this.history.push({before: this.snapshot()});
      if (this.history.length > 2) disposeSnapshot(this.history.shift()!.before);
      this.inFlight = true;
      const r = await this.step(batch.x, batch.labels, batch.n, plan.gradientScale(rank, s));
      const stepSeconds = (performance.now() - stepStart) / 1000;
      if (batch.n > 0 && !Number.isFinite(r.loss)) throw new NonFiniteLossError(epoch, done + s + 1, done + plan.steps, r.loss);
      const t: StepTally = {loss: r.loss, correct: r.correct, count: batch.n, seconds: stepSeconds, allreduceSeconds: r.reduceSeconds};
      this.history.at(-1)!.tally = t;
      this.inFlight = false;
      this.segmentSteps++;
      this.tally.lossSum += t.loss * t.count;
      this.tally.correct += t.correct;
      this.tally.count += t.count;
      this.tally.seconds += t.seconds;
      this.tally.allreduceSeconds += t.allreduceSeconds;
      this.tally.steps++;
      onStep?.({epoch, step: done + s + 1, steps: done + plan.steps, loss: r.loss, globalImages: plan.stepCounts(s).reduce((a, c) => a + c, 0), images: batch.n, seconds: stepSeconds});
      await yieldToEventLoop();
    }
    const t = this.tally;
    return {trainLossSum: t.lossSum, trainCorrect: t.correct, trainCount: t.count, steps: t.steps, seconds: t.seconds, allreduceSeconds: t.allreduceSeconds};
  }

  /** Averages BN running mean/var over the ranks (bitwise equal afterwards). */
  async averageBatchNorm(): Promise<void> {
    this.beforeAverage = new Map([...this.model.buffers].map(([name, v]) => [name, tf.clone(v)]));
    const buffers = [...this.model.buffers.values()];
    const flat = tf.tidy(() => tf.concat(buffers.map((b) => tf.reshape(b, [-1]))));
    const data = (await flat.data()) as Float32Array;
    flat.dispose();
    // Running statistics, once per epoch: averaged exactly even on an fp16 ring (a running variance may exceed ±65504, and it costs nothing).
    const mean = await this.reduce(data, true);
    let offset = 0;
    for (const b of buffers) {
      const t = tf.tensor(mean.subarray(offset, offset + b.size), b.shape, 'float32');
      b.assign(t);
      t.dispose();
      offset += b.size;
    }
  }

  /** Eval mode over this rank's test shard (r, r+N, …): sums for the coordinator to aggregate. */
  async evaluate(ds: Dataset, batchSize = 128): Promise<ReplicaEval> {
    return evalSums(this.model, ds, evalShard(ds.count, this.options.rank, this.options.worldSize), batchSize, yieldToEventLoop);
  }

  /** sha256 of every parameter and BN buffer (tfjs layouts, state_dict order): equal on every rank after the epoch-end BN averaging. */
  async checksum(): Promise<string> {
    return weightsChecksum(this.model);
  }

  /**
   * sha256 of every parameter and momentum buffer: what must be equal on every rank at any step
   * boundary (BN running statistics differ between ranks until the epoch-end averaging).
   */
  async stepStateChecksum(): Promise<string> {
    const hash = createHash('sha256');
    const momentum = await this.optimizer.momentumState();
    for (const [name, v] of this.model.params) {
      for (const data of [(await v.data()) as Float32Array, momentum.get(name)]) if (data) hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    return hash.digest('hex');
  }
}

function disposeAll(m: Map<string, tf.Tensor>): void {
  for (const t of m.values()) t.dispose();
}

function disposeSnapshot(s: Snapshot): void {
  disposeAll(s.params);
  disposeAll(s.buffers);
  disposeAll(s.momentum);
}

/**
 * A macrotask turn: awaiting tfjs `data()` on wasm/cpu only yields microtasks, so without this a whole
 * epoch (and with one worker, no network I/O at all) would starve timers and socket writes.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export async function weightsChecksum(model: ShuffleNetV2): Promise<string> {
  const hash = createHash('sha256');
  for (const v of [...model.params.values(), ...model.buffers.values()]) {
    const data = (await v.data()) as Float32Array;
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest('hex');
}

/** The state dict (PyTorch names and layouts) as safetensors bytes: broadcast and checkpoint format. */
export async function serializeModel(model: ShuffleNetV2, metadata: Record<string, string> = {}): Promise<Uint8Array> {
  return serializeSafetensors(await model.stateDict(), metadata);
}

/** SGD momentum buffers (tfjs layouts, parameter names) as safetensors bytes. */
export async function serializeMomentum(model: ShuffleNetV2, optimizer: SGD): Promise<Uint8Array> {
  const state = await optimizer.momentumState();
  const tensors = new Map<string, {shape: number[]; data: Float32Array}>();
  for (const [name, data] of state) tensors.set(name, {shape: model.params.get(name)!.shape, data});
  return serializeSafetensors(tensors, {format: 'dtrain-sgd-momentum', layout: 'tfjs'});
}

export function loadMomentum(optimizer: SGD, bytes: Uint8Array): void {
  const file = parseSafetensors(bytes, 'optimizer state');
  const state = new Map<string, {shape: number[]; data: Float32Array}>();
  for (const [name, t] of file.tensors) state.set(name, {shape: t.shape, data: t.data as Float32Array});
  optimizer.loadMomentumState(state);
}
