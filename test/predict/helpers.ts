/**
 * Shared by the predict/eval/plot tests: a clearly separable image set (one colour per class), a
 * tiny model trained on it, the built CLI, and pixel checks on PNGs.
 */
import {execFile} from 'node:child_process';
import {existsSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';

import sharp from 'sharp';

import {CIFAR10_CLASSES, type Dataset, IMAGE_BYTES} from '../../src/data/index.js';
import {initBackend} from '../../src/engine/backend.js';
import {serializeSafetensors} from '../../src/model/safetensors.js';
import {ShuffleNetV2} from '../../src/model/shufflenetv2.js';
import {SGD} from '../../src/optim/sgd.js';
import {Random} from '../../src/util/random.js';
import {Trainer} from '../../src/worker/trainer.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BUILT = existsSync(path.join(ROOT, 'dist/commands/predict.js'));

/** Class c is this colour (airplane red, automobile green, …): far apart in RGB, so a CNN separates them in a few dozen steps. */
export const COLOURS: ReadonlyArray<readonly [number, number, number]> = [
  [230, 40, 40],
  [40, 200, 40],
  [40, 60, 230],
  [240, 230, 40],
  [230, 40, 230],
  [40, 220, 230],
  [245, 245, 245],
  [15, 15, 15],
  [128, 128, 128],
  [240, 140, 20],
];

/**
 * `shown[k]` is the colour class image k shows; its label is `labels[k]` (default: the same). Each
 * image gets a brightness shift of ±20 and pixel noise of ±50, so there is texture for BatchNorm.
 */
export function colourSet(shown: number[], seed: number, labels: number[] = shown): Dataset {
  const rng = new Random(seed);
  const images = new Uint8Array(shown.length * IMAGE_BYTES);
  shown.forEach((c, k) => {
    const shift = rng.uniform(-20, 20);
    for (let ch = 0; ch < 3; ch++) {
      for (let p = 0; p < 1024; p++) images[k * IMAGE_BYTES + ch * 1024 + p] = Math.max(0, Math.min(255, Math.round(COLOURS[c][ch] + shift + rng.uniform(-50, 50))));
    }
  });
  return {name: 'colours', count: shown.length, images, labels: Uint8Array.from(labels), classNames: CIFAR10_CLASSES};
}

/** 0, 1, …, 9, 0, 1, … (n items). */
export const cycle = (n: number): number[] => Array.from({length: n}, (_, k) => k % 10);

/**
 * Size 0.5 trained on 200 colour images for 60 steps (batch 20, SGD lr 0.03 momentum 0.5, no
 * augmentation: measured to reach 100% on fresh colour images), serialized as `dtrain run` does.
 */
export async function trainColourCheckpoint(): Promise<Buffer> {
  await initBackend('wasm');
  const model = ShuffleNetV2.create(0.5, 0);
  const optimizer = new SGD({lr: 0.03, momentum: 0.5, weightDecay: 5e-4});
  const trainer = new Trainer(model, optimizer, {batchSize: 20, seed: 0, augment: false});
  const train = colourSet(cycle(200), 1);
  const epochs = 6;
  for (let epoch = 0; epoch < epochs; epoch++) await trainer.trainEpoch(train, epoch);
  const bytes = serializeSafetensors(await model.stateDict(), {format: 'dtrain-checkpoint', size: '0.5', epoch: String(epochs)});
  model.dispose();
  optimizer.dispose();
  return bytes;
}

/** Image k of a Dataset as an encoded file (upscaled ×2 so that predict's resize really resizes). */
export async function encodeImage(ds: Dataset, k: number, format: 'png' | 'jpeg' | 'webp'): Promise<Buffer> {
  const hwc = Buffer.alloc(IMAGE_BYTES);
  for (let p = 0; p < 1024; p++) for (let ch = 0; ch < 3; ch++) hwc[p * 3 + ch] = ds.images[k * IMAGE_BYTES + ch * 1024 + p];
  return sharp(hwc, {raw: {width: 32, height: 32, channels: 3}}).resize(64, 64, {kernel: 'nearest'}).toFormat(format).toBuffer();
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const execFileAsync = promisify(execFile);

/** The built CLI (node bin/run.js), asynchronously so that a test's HTTP server keeps answering. */
export async function dtrain(...args: string[]): Promise<CliResult> {
  try {
    const {stdout, stderr} = await execFileAsync(process.execPath, [path.join(ROOT, 'bin/run.js'), ...args], {cwd: ROOT, timeout: 120_000});
    return {code: 0, stdout, stderr};
  } catch (error) {
    const e = error as {code?: number | string; stdout?: string; stderr?: string};
    return {code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? ''};
  }
}

export interface Picture {
  width: number;
  height: number;
  channels: number;
  data: Buffer;
}

export async function readPicture(file: string): Promise<Picture> {
  const {data, info} = await sharp(file).removeAlpha().raw().toBuffer({resolveWithObject: true});
  return {width: info.width, height: info.height, channels: info.channels, data};
}

export function pixel(p: Picture, x: number, y: number): [number, number, number] {
  const o = (y * p.width + x) * p.channels;
  return [p.data[o], p.data[o + 1], p.data[o + 2]];
}

/** Rough colour classes, loose enough for antialiased edges. */
export const greenish = ([r, g, b]: number[]): boolean => g > 100 && g > r + 50 && g > b + 50;
export const reddish = ([r, g, b]: number[]): boolean => r > 150 && r > g + 80 && r > b + 80;

/** Counts pixels matching `test`. */
export function countPixels(p: Picture, test: (rgb: number[]) => boolean): number {
  let n = 0;
  for (let o = 0; o < p.data.length; o += p.channels) if (test([p.data[o], p.data[o + 1], p.data[o + 2]])) n++;
  return n;
}

/** Standard deviation of all channel values: 0 for a blank image. */
export function pixelStdev(p: Picture): number {
  let sum = 0;
  let sq = 0;
  for (const v of p.data) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / p.data.length;
  return Math.sqrt(sq / p.data.length - mean * mean);
}
