/**
 * Batches for the model, exactly the seed's torchvision pipeline, as NHWC float32 (what tfjs convs take):
 *
 *   train: RandomCrop(32, padding=4) → RandomHorizontalFlip(0.5) → ToTensor → Normalize(0.5, 0.5)
 *   test:  ToTensor → Normalize(0.5, 0.5)
 *
 * Padding is zeros in pixel space before normalisation, so padded pixels become exactly -1.
 * Random draws, per image in batch order, always in this order (as torchvision draws them):
 *   1. crop top    i = rng.int(9)   (0..8; 4 = no shift)
 *   2. crop left   j = rng.int(9)
 *   3. flip        rng.next() < 0.5
 * so a run is reproducible from the Random's state.
 */
import type {Random} from '../util/random.js';
import {type Dataset, IMAGE_BYTES, IMAGE_SIZE} from './cifar10.js';

export const PADDING = 4;
/** Crop offsets are uniform in [0, CROP_RANGE). */
const CROP_RANGE = 2 * PADDING + 1;
const PLANE = IMAGE_SIZE * IMAGE_SIZE;
const S = IMAGE_SIZE;

/**
 * byte → normalised value, each step rounded to float32 as PyTorch computes it
 * (`x.float().div(255)`, then `sub_(0.5).div_(0.5)`), so values match torchvision bit for bit.
 */
const LUT = (() => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) {
    const scaled = Math.fround(v / 255);
    t[v] = Math.fround(Math.fround(scaled - 0.5) / 0.5);
  }
  return t;
})();

/** The normalised value of a zero (padding) pixel. */
export const PAD_VALUE = LUT[0];

export interface Batch {
  /** n × 32 × 32 × 3, NHWC. */
  x: Float32Array;
  labels: Int32Array;
  n: number;
}

export interface AugmentParams {
  /** Crop top offset in the padded image, 0..8. */
  i: number;
  /** Crop left offset in the padded image, 0..8. */
  j: number;
  flip: boolean;
}

export interface MakeBatchOptions {
  augment: boolean;
  /** Required when augment is true: the source of crop and flip draws. */
  rng?: Random;
  /** Reuse these buffers (length ≥ n·3072 and ≥ n) instead of allocating: the hot loop allocates nothing. */
  out?: {x: Float32Array; labels: Int32Array};
  /** Called with each image's draws (tests, debugging). */
  onParams?: (index: number, params: AugmentParams) => void;
}

/** Assembles the images at `indices` of `ds` into one normalised (and, for training, augmented) batch. */
export function makeBatch(ds: Dataset, indices: ArrayLike<number>, opts: MakeBatchOptions): Batch {
  const n = indices.length;
  if (opts.augment && !opts.rng) throw new Error('makeBatch: augment needs an rng (a seeded Random) so that runs are reproducible');
  const x = opts.out ? opts.out.x : new Float32Array(n * IMAGE_BYTES);
  const labels = opts.out ? opts.out.labels : new Int32Array(n);
  if (x.length < n * IMAGE_BYTES || labels.length < n) throw new RangeError(`makeBatch: out buffers too small for ${n} images`);
  const images = ds.images;
  for (let b = 0; b < n; b++) {
    const idx = indices[b];
    if (!(idx >= 0 && idx < ds.count) || !Number.isInteger(idx)) throw new RangeError(`makeBatch: index ${idx} outside 0..${ds.count - 1} of ${ds.name}`);
    labels[b] = ds.labels[idx];
    const src = idx * IMAGE_BYTES;
    const dst = b * IMAGE_BYTES;
    if (!opts.augment) {
      copyPlain(images, src, x, dst);
      continue;
    }
    const rng = opts.rng!;
    const i = rng.int(CROP_RANGE);
    const j = rng.int(CROP_RANGE);
    const flip = rng.next() < 0.5;
    opts.onParams?.(b, {i, j, flip});
    copyAugmented(images, src, x, dst, i - PADDING, j - PADDING, flip);
  }
  return {x: opts.out && x.length !== n * IMAGE_BYTES ? x.subarray(0, n * IMAGE_BYTES) : x, labels: labels.length !== n ? labels.subarray(0, n) : labels, n};
}

/** CHW bytes → HWC normalised floats. */
function copyPlain(images: Uint8Array, src: number, x: Float32Array, dst: number): void {
  for (let p = 0; p < PLANE; p++) {
    const o = dst + p * 3;
    x[o] = LUT[images[src + p]];
    x[o + 1] = LUT[images[src + PLANE + p]];
    x[o + 2] = LUT[images[src + 2 * PLANE + p]];
  }
}

/**
 * Output pixel (y, x) = source pixel (y + dy, sx) with sx = x + dx, or 31 - x + dx when flipped
 * (the flip applies to the crop), and PAD_VALUE where that falls outside the image.
 */
function copyAugmented(images: Uint8Array, src: number, x: Float32Array, dst: number, dy: number, dx: number, flip: boolean): void {
  const step = flip ? -1 : 1;
  for (let y = 0; y < S; y++) {
    const rowOut = dst + y * S * 3;
    const sy = y + dy;
    if (sy < 0 || sy >= S) {
      x.fill(PAD_VALUE, rowOut, rowOut + S * 3);
      continue;
    }
    const rowIn = src + sy * S;
    let sx = flip ? S - 1 + dx : dx;
    for (let xo = 0; xo < S; xo++, sx += step) {
      const o = rowOut + xo * 3;
      if (sx < 0 || sx >= S) {
        x[o] = PAD_VALUE;
        x[o + 1] = PAD_VALUE;
        x[o + 2] = PAD_VALUE;
      } else {
        const p = rowIn + sx;
        x[o] = LUT[images[p]];
        x[o + 1] = LUT[images[p + PLANE]];
        x[o + 2] = LUT[images[p + 2 * PLANE]];
      }
    }
  }
}
