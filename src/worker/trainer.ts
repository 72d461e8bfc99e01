import * as tf from '@tensorflow/tfjs-core';

import {type Dataset, IMAGE_BYTES, IMAGE_SIZE, makeBatch} from '../data/index.js';
import {NUM_CLASSES} from '../model/architecture.js';
import {disposeGradients, lossAndGradients} from '../model/gradients.js';
import {crossEntropy} from '../model/loss.js';
import type {ShuffleNetV2} from '../model/shufflenetv2.js';
import type {SGD} from '../optim/sgd.js';
import {Random} from '../util/random.js';
import {NonFiniteLossError} from './divergence.js';

export interface StepProgress {
  epoch: number;
  step: number;
  steps: number;
  images: number;
  loss: number;
  imagesPerSec: number;
}

export interface EpochResult {
  epoch: number;
  /** Mean cross-entropy over every training image of the epoch. */
  trainLoss: number;
  trainAccuracy: number;
  images: number;
  steps: number;
  seconds: number;
  imagesPerSec: number;
  lr: number;
}

export interface EvalResult {
  loss: number;
  accuracy: number;
  count: number;
  correct: number;
  /** Accuracy per class index (NaN for a class with no test image). */
  perClass: number[];
}

export interface TrainerOptions {
  batchSize: number;
  /** Seeds the per-epoch data order and augmentation, so a run is reproducible and resumable. */
  seed: number;
  augment?: boolean;
}

/** Seeds derived per epoch and purpose, so that epoch e can be replayed without replaying 0..e−1. */
export function epochSeed(seed: number, epoch: number, purpose: 'order' | 'augment'): number {
  return (Math.imul(seed ^ 0x9e3779b9, 2654435761) + Math.imul(epoch + 1, 40503) + (purpose === 'order' ? 0 : 0x5bd1e995)) >>> 0;
}

/**
 * The training loop as a library: one process, one model replica. Reads results with
 * `await data()` (never dataSync) and frees every tensor it makes, so tf.memory() stays flat.
 */
export class Trainer {
  private readonly xBuffer: Float32Array;
  private readonly labelBuffer: Int32Array;

  constructor(
    readonly model: ShuffleNetV2,
    readonly optimizer: SGD,
    readonly options: TrainerOptions,
  ) {
    this.xBuffer = new Float32Array(options.batchSize * IMAGE_BYTES);
    this.labelBuffer = new Int32Array(options.batchSize);
  }

  /** One forward/backward/SGD step on a prepared batch; returns its mean loss and correct count. */
  async step(x: Float32Array, labels: Int32Array, n: number): Promise<{loss: number; correct: number}> {
    const xs = tf.tensor4d(x.subarray(0, n * IMAGE_BYTES), [n, IMAGE_SIZE, IMAGE_SIZE, 3]);
    const ys = tf.tensor1d(labels.subarray(0, n), 'int32');
    const result = lossAndGradients(this.model, xs, ys);
    this.optimizer.step(this.model.params, result.grads);
    this.model.applyBatchStats(result.stats);
    const correct = countCorrect(result.logits, ys);
    const [loss, hits] = await Promise.all([result.loss.data(), correct.data()]);
    disposeGradients(result);
    tf.dispose([xs, ys, correct]);
    return {loss: loss[0], correct: hits[0]};
  }

  async trainEpoch(ds: Dataset, epoch: number, onStep?: (p: StepProgress) => void): Promise<EpochResult> {
    const {batchSize} = this.options;
    const order = new Random(epochSeed(this.options.seed, epoch, 'order')).permutation(ds.count);
    const rng = new Random(epochSeed(this.options.seed, epoch, 'augment'));
    const steps = Math.ceil(ds.count / batchSize); // drop_last=False, as the seed's DataLoader
    const started = performance.now();
    let lossSum = 0;
    let correct = 0;
    let images = 0;
    for (let s = 0; s < steps; s++) {
      const indices = order.subarray(s * batchSize, Math.min((s + 1) * batchSize, ds.count));
      const batch = makeBatch(ds, indices, {augment: this.options.augment ?? true, rng, out: {x: this.xBuffer, labels: this.labelBuffer}});
      const r = await this.step(batch.x, batch.labels, batch.n);
      if (!Number.isFinite(r.loss)) throw new NonFiniteLossError(epoch, s + 1, steps, r.loss);
      lossSum += r.loss * batch.n;
      correct += r.correct;
      images += batch.n;
      onStep?.({epoch, step: s + 1, steps, images, loss: r.loss, imagesPerSec: images / ((performance.now() - started) / 1000)});
    }
    const seconds = (performance.now() - started) / 1000;
    return {epoch, trainLoss: lossSum / images, trainAccuracy: correct / images, images, steps, seconds, imagesPerSec: images / seconds, lr: this.optimizer.lr};
  }

  /** Eval mode (running statistics) over a whole dataset: loss, accuracy and per-class accuracy. */
  async evaluate(ds: Dataset, batchSize = this.options.batchSize): Promise<EvalResult> {
    const {lossSum, correctPerClass, countPerClass} = await evalSums(this.model, ds, Uint32Array.from({length: ds.count}, (_, i) => i), batchSize);
    const correct = correctPerClass.reduce((a, b) => a + b, 0);
    return {
      loss: lossSum / ds.count,
      accuracy: correct / ds.count,
      count: ds.count,
      correct,
      perClass: correctPerClass.map((h, c) => (countPerClass[c] > 0 ? h / countPerClass[c] : Number.NaN)),
    };
  }
}

/** Sums of an eval pass: what a rank reports to the coordinator, and what evaluate() divides. */
export interface EvalSums {
  lossSum: number;
  correctPerClass: number[];
  countPerClass: number[];
}

/**
 * Eval mode over the images `indices` of `ds` (test transform only), in batches; `afterBatch` runs
 * between batches (a worker yields to its event loop there so its session stays responsive).
 */
export async function evalSums(model: ShuffleNetV2, ds: Dataset, indices: Uint32Array, batchSize: number, afterBatch?: () => Promise<void>): Promise<EvalSums> {
  const correctPerClass = new Array<number>(NUM_CLASSES).fill(0);
  const countPerClass = new Array<number>(NUM_CLASSES).fill(0);
  let lossSum = 0;
  const x = new Float32Array(batchSize * IMAGE_BYTES);
  const labelsOut = new Int32Array(batchSize);
  for (let start = 0; start < indices.length; start += batchSize) {
    const batch = makeBatch(ds, indices.subarray(start, start + batchSize), {augment: false, out: {x, labels: labelsOut}});
    const xs = tf.tensor4d(batch.x.subarray(0, batch.n * IMAGE_BYTES), [batch.n, IMAGE_SIZE, IMAGE_SIZE, 3]);
    const ys = tf.tensor1d(batch.labels.subarray(0, batch.n), 'int32');
    const {logits} = model.forward(xs, false);
    const loss = crossEntropy(logits, ys);
    const predicted = tf.argMax(logits, 1);
    const [lossValue, predictions] = await Promise.all([loss.data(), predicted.data()]);
    tf.dispose([xs, ys, logits, loss, predicted]);
    lossSum += lossValue[0] * batch.n;
    for (let i = 0; i < batch.n; i++) {
      const label = batch.labels[i];
      countPerClass[label]++;
      if (predictions[i] === label) correctPerClass[label]++;
    }
    await afterBatch?.();
  }
  return {lossSum, correctPerClass, countPerClass};
}

function countCorrect(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'int32')));
}
