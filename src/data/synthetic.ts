/**
 * A synthetic CIFAR-10 stand-in for offline runs and tests, in the same in-memory (and, through
 * writeCifar10Dir, on-disk) format. Each class is a striped pattern: a class-specific pair of
 * stripe colours at a class-specific orientation and period. Classes c and c+5 share colours and
 * differ by orientation (90° apart), so neither colour nor orientation alone separates them. Each
 * image draws its own phase, window (where the stripes are; the rest is a random plain background),
 * contrast, brightness, colour cast and pixel noise, and ~4% of images show another class than their
 * label: a small CNN learns it quickly but cannot reach 100%.
 *
 * Deterministic on every machine: only the seeded Random (integer ops and one exact division) and
 * IEEE-754 basic arithmetic are used, never Math.sin/exp/log, whose last bits may differ between
 * platforms. Image k of a split depends only on (seed, split, k), so the first N of a larger set
 * equal a set of N.
 */
import {Random} from '../util/random.js';
import {CIFAR10_CLASSES, type Dataset, IMAGE_BYTES, IMAGE_SIZE} from './cifar10.js';

export interface SyntheticOptions {
  trainCount: number;
  testCount: number;
  seed: number;
}

/** Fraction of images drawn from a class other than their label. */
export const SYNTHETIC_LABEL_NOISE = 0.04;

// cos/sin of k·18°, k = 0..9, written out so no transcendental function is evaluated.
const C18 = 0.9510565162951535;
const S18 = 0.3090169943749474;
const C36 = 0.8090169943749475;
const S36 = 0.5877852522924731;
const COS = [1, C18, C36, S36, S18, 0, -S18, -S36, -C36, -C18];
const SIN = [0, S18, S36, C36, C18, 1, C18, C36, S36, S18];

/** Stripe colours (A, B; RGB in [0, 1]) shared by classes c and c+5. */
const PALETTES: ReadonlyArray<readonly [readonly number[], readonly number[]]> = [
  [[0.85, 0.3, 0.25], [0.35, 0.15, 0.1]], // red / dark brown
  [[0.3, 0.75, 0.3], [0.1, 0.3, 0.15]], // green / dark green
  [[0.3, 0.4, 0.9], [0.15, 0.15, 0.4]], // blue / navy
  [[0.9, 0.85, 0.3], [0.45, 0.35, 0.1]], // yellow / olive
  [[0.8, 0.35, 0.8], [0.3, 0.5, 0.55]], // magenta / teal
];

interface ClassStyle {
  a: readonly number[];
  b: readonly number[];
  /** Unit direction across the stripes. */
  dx: number;
  dy: number;
  period: number;
}

const STYLES: ClassStyle[] = Array.from({length: 10}, (_, c) => {
  // Orientation index: c and c+5 are 5·18° = 90° apart; neighbouring classes differ by 36°.
  const k = (2 * c + (c >= 5 ? 5 : 0)) % 10;
  const [a, b] = PALETTES[c % 5];
  return {a, b, dx: COS[k], dy: SIN[k], period: 4 + (c % 4)};
});

/** A 32-bit mix of integers (murmur3 finaliser): independent streams for (seed, split, index). */
function mix(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h ^= p >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

const SPLIT_ID = {train: 1, test: 2} as const;

/** Labels of a split: every block of 10 consecutive images holds each class once, in a seeded order. */
function syntheticLabels(count: number, seed: number, split: keyof typeof SPLIT_ID): Uint8Array {
  const labels = new Uint8Array(count);
  for (let block = 0; block * 10 < count; block++) {
    const order = new Random(mix(seed, SPLIT_ID[split], 0x1abe1, block)).permutation(10);
    for (let i = 0; i < 10 && block * 10 + i < count; i++) labels[block * 10 + i] = order[i];
  }
  return labels;
}

/** Draws one image of class `cls` into `out` (CHW bytes) from `rng`. */
function drawImage(out: Uint8Array, offset: number, cls: number, rng: Random): void {
  const style = STYLES[cls];
  const phase = rng.next();
  const size = 20 + rng.int(13); // window side 20..32
  const y0 = rng.int(IMAGE_SIZE - size + 1);
  const x0 = rng.int(IMAGE_SIZE - size + 1);
  const contrast = rng.uniform(0.45, 1);
  const brightness = rng.uniform(-0.12, 0.12);
  const noise = rng.uniform(0.04, 0.12);
  const cast = [rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)];
  const bg = [rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85)];
  const mid = [0, 1, 2].map((ch) => (style.a[ch] + style.b[ch]) / 2);
  const half = [0, 1, 2].map((ch) => (contrast * (style.a[ch] - style.b[ch])) / 2);
  const inv = 1 / style.period;
  for (let y = 0; y < IMAGE_SIZE; y++) {
    const inY = y >= y0 && y < y0 + size;
    for (let x = 0; x < IMAGE_SIZE; x++) {
      const inside = inY && x >= x0 && x < x0 + size;
      let tri = 0;
      if (inside) {
        const u = (x * style.dx + y * style.dy) * inv + phase;
        const f = u - Math.floor(u);
        tri = 4 * Math.abs(f - 0.5) - 1; // triangle wave in [-1, 1]
      }
      for (let ch = 0; ch < 3; ch++) {
        const base = inside ? mid[ch] + half[ch] * tri : bg[ch];
        // Triangular noise (sum of two uniforms): bounded, and needs no log/cos.
        const n = (rng.next() + rng.next() - 1) * noise * 2;
        const v = base + brightness + cast[ch] + n;
        const byte = Math.round(v * 255);
        out[offset + ch * 1024 + y * IMAGE_SIZE + x] = byte < 0 ? 0 : byte > 255 ? 255 : byte;
      }
    }
  }
}

function generateSplit(count: number, seed: number, split: keyof typeof SPLIT_ID): Dataset {
  const labels = syntheticLabels(count, seed, split);
  const images = new Uint8Array(count * IMAGE_BYTES);
  for (let k = 0; k < count; k++) {
    const rng = new Random(mix(seed, SPLIT_ID[split], k));
    let cls = labels[k];
    if (rng.next() < SYNTHETIC_LABEL_NOISE) cls = (cls + 1 + rng.int(9)) % 10; // shown class ≠ label
    drawImage(images, k * IMAGE_BYTES, cls, rng);
  }
  return {name: `synthetic/${split}`, count, images, labels, classNames: CIFAR10_CLASSES};
}

/** Generates train and test splits (independent images; test never repeats a train image's stream). */
export function generateSynthetic(options: SyntheticOptions): {train: Dataset; test: Dataset} {
  for (const [name, value] of [
    ['trainCount', options.trainCount],
    ['testCount', options.testCount],
  ] as const) {
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`generateSynthetic: ${name} must be a non-negative integer, got ${value}`);
  }
  if (!Number.isInteger(options.seed)) throw new RangeError(`generateSynthetic: seed must be an integer, got ${options.seed}`);
  return {
    train: generateSplit(options.trainCount, options.seed, 'train'),
    test: generateSplit(options.testCount, options.seed, 'test'),
  };
}
