import {createHash} from 'node:crypto';

import * as tf from '@tensorflow/tfjs-core';

import {evalShard, ShardPlan} from '../coordinator/shard-plan.js';
import {type Dataset, IMAGE_BYTES, IMAGE_SIZE, makeBatch} from '../data/index.js';
import {disposeGradients, lossAndGradients} from '../model/gradients.js';
import {parseSafetensors, serializeSafetensors} from '../model/safetensors.js';
import type {ShuffleNetV2} from '../model/shufflenetv2.js';
import type {SGD} from '../optim/sgd.js';
import {Random} from '../util/random.js';
import {NonFiniteLossError} from './divergence.js';
import {epochSeed, type EvalSums, evalSums} from './trainer.js';

/** What a replica needs from the ring: the elementwise mean over ranks, bitwise equal on every rank. */
export interface MeanReducer {
  allReduceMean(data: Float32Array, tag: {job: string; step: number}): Promise<Float32Array>;
}

export interface ReplicaOptions {
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

/** Augmentation draws per (seed, epoch, rank); rank 0 draws exactly what a single process draws. */
export function rankAugmentSeed(seed: number, epoch: number, rank: number): number {
  return (epochSeed(seed, epoch, 'augment') + Math.imul(rank, 0x9e3779b1)) >>> 0;
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

  constructor(
    readonly model: ShuffleNetV2,
    readonly optimizer: SGD,
    readonly reducer: MeanReducer,
    readonly options: ReplicaOptions,
  ) {
    this.paramShapes = [...model.params].map(([name, v]) => [name, v.shape, v.size]);
    this.gradientSize = this.paramShapes.reduce((a, [, , n]) => a + n, 0);
  }

  /** Mean over ranks of `data`, tagged with this job and the next sequence number. */
  private async reduce(data: Float32Array): Promise<Float32Array> {
    return this.reducer.allReduceMean(data, {job: this.options.jobId, step: this.seq++});
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

  async trainEpoch(ds: Dataset, epoch: number, lr: number, onStep?: (s: ReplicaStep) => void): Promise<ReplicaEpoch> {
    const {rank, worldSize, globalBatch, seed} = this.options;
    this.optimizer.lr = lr;
    const plan = new ShardPlan({count: ds.count, worldSize, globalBatch, seed, epoch});
    const shard = plan.shard(rank);
    const rng = new Random(rankAugmentSeed(seed, epoch, rank));
    const b = plan.rankBatch(rank);
    const x = new Float32Array(b * IMAGE_BYTES);
    const labelsOut = new Int32Array(b);
    const started = performance.now();
    let lossSum = 0;
    let correct = 0;
    let count = 0;
    let allreduceSeconds = 0;
    for (let s = 0; s < plan.steps; s++) {
      const indices = plan.stepIndices(rank, s, shard);
      const batch = indices.length > 0 ? makeBatch(ds, indices, {augment: this.options.augment ?? true, rng, out: {x, labels: labelsOut}}) : {x, labels: labelsOut, n: 0};
      const stepStart = performance.now();
      const r = await this.step(batch.x, batch.labels, batch.n, plan.gradientScale(rank, s));
      const stepSeconds = (performance.now() - stepStart) / 1000;
      if (batch.n > 0 && !Number.isFinite(r.loss)) throw new NonFiniteLossError(epoch, s + 1, plan.steps, r.loss);
      allreduceSeconds += r.reduceSeconds;
      lossSum += r.loss * batch.n;
      correct += r.correct;
      count += batch.n;
      onStep?.({epoch, step: s + 1, steps: plan.steps, loss: r.loss, globalImages: plan.stepCounts(s).reduce((a, c) => a + c, 0), images: batch.n, seconds: stepSeconds});
      await yieldToEventLoop();
    }
    return {trainLossSum: lossSum, trainCorrect: correct, trainCount: count, steps: plan.steps, seconds: (performance.now() - started) / 1000, allreduceSeconds};
  }

  /** Averages BN running mean/var over the ranks (bitwise equal afterwards). */
  async averageBatchNorm(): Promise<void> {
    const buffers = [...this.model.buffers.values()];
    const flat = tf.tidy(() => tf.concat(buffers.map((b) => tf.reshape(b, [-1]))));
    const data = (await flat.data()) as Float32Array;
    flat.dispose();
    const mean = await this.reduce(data);
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

  /** sha256 of every parameter and BN buffer (tfjs layouts, state_dict order). */
  async checksum(): Promise<string> {
    return weightsChecksum(this.model);
  }
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
