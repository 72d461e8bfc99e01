/** Class probabilities for dataset images: the test transform (makeBatch, no augmentation), eval-mode BatchNorm, softmax. */
import * as tf from '@tensorflow/tfjs-core';

import {CIFAR10_CLASSES, type Dataset, IMAGE_BYTES, IMAGE_SIZE, makeBatch} from '../data/index.js';
import type {ShuffleNetV2} from '../model/shufflenetv2.js';

/** Images per forward pass: bounds memory whatever the number of inputs. */
const CHUNK = 64;

/** One Float32Array of ten probabilities per index, in the order of `indices`. */
export async function classProbabilities(model: ShuffleNetV2, ds: Dataset, indices: ArrayLike<number>): Promise<Float32Array[]> {
  const rows: Float32Array[] = [];
  const out = {x: new Float32Array(CHUNK * IMAGE_BYTES), labels: new Int32Array(CHUNK)};
  for (let start = 0; start < indices.length; start += CHUNK) {
    const chunk = Array.from({length: Math.min(CHUNK, indices.length - start)}, (_, i) => indices[start + i]);
    const {x, n} = makeBatch(ds, chunk, {augment: false, out});
    const probs = tf.tidy(() => tf.softmax(model.forward(tf.tensor4d(x, [n, IMAGE_SIZE, IMAGE_SIZE, 3]), false).logits));
    const values = (await probs.data()) as Float32Array;
    probs.dispose();
    for (let i = 0; i < n; i++) rows.push(values.slice(i * CIFAR10_CLASSES.length, (i + 1) * CIFAR10_CLASSES.length));
  }
  return rows;
}

/** Index of the most probable class (the first one on a tie, as argmax). */
export function topClass(probabilities: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < probabilities.length; c++) if (probabilities[c] > probabilities[best]) best = c;
  return best;
}

/** class name → probability, in class order (what --json prints). */
export function byClassName(probabilities: ArrayLike<number>): Record<string, number> {
  return Object.fromEntries(CIFAR10_CLASSES.map((name, c) => [name, probabilities[c]]));
}
