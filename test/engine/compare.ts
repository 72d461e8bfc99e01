/**
 * Helpers shared by the engine tests: seeded data and error measures. Importing this module also
 * loads the cpu and wasm backends and registers the op gradients, which every engine test needs.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import '../../src/engine/gradients.js';
import {Random} from '../../src/util/random.js';

export function normalArray(size: number, seed: number, mean = 0, std = 1): Float32Array {
  const rng = new Random(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = mean + std * rng.normal();
  return out;
}

/** ‖got − want‖₂ / ‖want‖₂ (want nonzero). */
export function relL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} ≠ ${want.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  if (den === 0) throw new Error('reference is all zeros');
  return Math.sqrt(num / den);
}

/** Largest |got − want| / (|want| + floor), elementwise. */
export function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>, floor: number): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + floor));
  return worst;
}
