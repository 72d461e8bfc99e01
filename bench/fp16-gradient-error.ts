/**
 * How far one step's fp16-all-reduced gradient is from the exact one (docs/performance.md, "Gradient
 * compression"): N ranks each compute ShuffleNetV2's gradient on their shard of one batch, exactly
 * as Replica.step flattens it, then the same inputs are mean-all-reduced over a real loopback ring
 * with compression none (float64 partial sums: the exactly rounded mean) and fp16. Prints JSON.
 *
 *   node --import tsx bench/fp16-gradient-error.ts [--workers 2] [--batch 128] [--seed 0] [--checkpoint FILE.safetensors]
 */
import {parseArgs} from 'node:util';

import * as tf from '@tensorflow/tfjs-core';

import {formLocalRing} from '../src/allreduce/index.js';
import {IMAGE_BYTES, IMAGE_SIZE, makeBatch, resolveDataset} from '../src/data/index.js';
import {initBackend} from '../src/engine/backend.js';
import {disposeGradients, lossAndGradients} from '../src/model/gradients.js';
import {modelFromCheckpoint, readCheckpoint} from '../src/model/checkpoint.js';
import {ShuffleNetV2} from '../src/model/shufflenetv2.js';

const {values} = parseArgs({options: {workers: {type: 'string', default: '2'}, batch: {type: 'string', default: '128'}, seed: {type: 'string', default: '0'}, checkpoint: {type: 'string'}}});
const workers = Number(values.workers);
const batch = Number(values.batch);
const seed = Number(values.seed);

await initBackend('auto');
const model = values.checkpoint ? modelFromCheckpoint(await readCheckpoint(values.checkpoint)) : ShuffleNetV2.create(0.5, seed);
const {train} = await resolveDataset({data: 'synthetic', trainLimit: batch});
const names = [...model.params.keys()];

/** Rank r's gradient on images r, r+N, … of the batch, flattened in state_dict order (as Replica.step). */
async function shardGradient(rank: number): Promise<Float32Array> {
  const indices = Array.from({length: batch}, (_, i) => i).filter((i) => i % workers === rank);
  const b = makeBatch(train, indices, {augment: false});
  const xs = tf.tensor4d(b.x.subarray(0, b.n * IMAGE_BYTES), [b.n, IMAGE_SIZE, IMAGE_SIZE, 3]);
  const ys = tf.tensor1d(b.labels.subarray(0, b.n), 'int32');
  const r = lossAndGradients(model, xs, ys);
  const flat = tf.tidy(() => tf.concat(names.map((n) => tf.reshape(r.grads.get(n)!, [-1]))));
  const data = (await flat.data()) as Float32Array;
  disposeGradients(r);
  tf.dispose([xs, ys, flat]);
  return data;
}

const inputs: Float32Array[] = [];
for (let r = 0; r < workers; r++) inputs.push(await shardGradient(r));
const ring = await formLocalRing(workers, {compression: 'fp16'});
async function reduce(compression: 'none' | 'fp16', step: number): Promise<{mean: Float32Array; bytes: number}> {
  const data = inputs.map((x) => x.slice());
  const before = ring.reduce((a, r) => a + r.totals.sentBytes, 0);
  await Promise.all(ring.map((r, i) => r.allReduceMean(data[i], {job: 'gradient-error', step}, {compression})));
  return {mean: data[0], bytes: ring.reduce((a, r) => a + r.totals.sentBytes, 0) - before};
}
const exact = await reduce('none', 0);
const half = await reduce('fp16', 1);
for (const r of ring) r.close();

let diff2 = 0;
let norm2 = 0;
let maxAbsDiff = 0;
let maxAbs = 0;
let subnormal = 0;
let flushed = 0;
let largestFlushed = 0;
for (let i = 0; i < exact.mean.length; i++) {
  const e = exact.mean[i];
  const d = half.mean[i] - e;
  diff2 += d * d;
  norm2 += e * e;
  maxAbsDiff = Math.max(maxAbsDiff, Math.abs(d));
  maxAbs = Math.max(maxAbs, Math.abs(e));
  if (Math.abs(e) < 2 ** -14) subnormal++;
  if (e !== 0 && half.mean[i] === 0) {
    flushed++;
    largestFlushed = Math.max(largestFlushed, Math.abs(e));
  }
}
const n = exact.mean.length;
console.log(
  JSON.stringify({
    workers,
    batch,
    weights: values.checkpoint ?? `init (seed ${seed})`,
    values: n,
    relativeL2: Math.sqrt(diff2 / norm2),
    maxAbsDiff,
    maxAbsGradient: maxAbs,
    shareBelowHalfNormal: subnormal / n,
    shareFlushedToZero: flushed / n,
    largestFlushed,
    bytesSentNone: exact.bytes,
    bytesSentFp16: half.bytes,
  }),
);
