/**
 * DtrainShuffleSplit and its gradient DtrainShuffleJoin for the wasm and cpu backends: ShuffleNetV2's
 * concat → channel shuffle (groups 2) → split of the next block as one copy. Given halves a and b
 * ([N, H, W, C/2] each), the shuffled tensor has channel 2i = a[i] and 2i + 1 = b[i]; it is returned
 * cut along channels into `parts` equal tensors. Join is the inverse copy (the gradient of Split).
 * On wasm this replaces Concat, Transpose and two Slices forward and Transpose, SplitV, two PadV2
 * and an Add backward (~10 % of a size-0.5 step) by one pass over the data each way, in
 * WebAssembly SIMD where each part takes a multiple of 4 channels from each half
 * (channel-shuffle-simd.ts), else in JS.
 */
import type {KernelConfig} from '@tensorflow/tfjs-core';

import {fitsShuffleSimd, simdShuffleCopy} from './channel-shuffle-simd.js';
import {cpuAndWasmConfigs, requireFloat32, runF32Kernel, type WasmBackend} from './kernel-utils.js';

export const SHUFFLE_SPLIT = 'DtrainShuffleSplit';
export const SHUFFLE_JOIN = 'DtrainShuffleJoin';

/**
 * Copies between the halves (a, b) and the parts of their interleaving: into the parts when
 * `toParts`, back into the halves otherwise. Each part's channel count must be even.
 */
export function shuffleCopy(a: Float32Array, b: Float32Array, parts: Float32Array[], half: number, toParts: boolean): void {
  const width = (2 * half) / parts.length;
  const pixels = a.length / half;
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p];
    const first = (p * width) / 2; // the halves' channel that part p starts at
    for (let m = 0; m < pixels; m++) {
      const end = (m + 1) * width;
      let h = m * half + first;
      if (toParts) {
        for (let o = m * width; o < end; o += 2, h++) {
          part[o] = a[h];
          part[o + 1] = b[h];
        }
      } else {
        for (let o = m * width; o < end; o += 2, h++) {
          a[h] = part[o];
          b[h] = part[o + 1];
        }
      }
    }
  }
}

/** Whether halves of `half` channels can be cut into `parts` parts of an even channel count. */
export function canShuffleSplit(half: number, parts: number): boolean {
  return Number.isInteger(parts) && parts >= 1 && (2 * half) % (2 * parts) === 0;
}

function requireShuffleSplit(half: number, parts: number, what: string): void {
  if (!canShuffleSplit(half, parts)) throw new Error(`${what}: ${2 * half} channels do not cut into ${parts} parts of an even width`);
}

const splitConfigs = cpuAndWasmConfigs(SHUFFLE_SPLIT, (backendName, {inputs, backend, attrs}) => {
  const {a, b} = inputs;
  const [n, h, w, half] = a.shape;
  if (a.shape.length !== 4 || String(a.shape) !== String(b.shape)) throw new Error(`${SHUFFLE_SPLIT}: need a and b of one NHWC shape, got [${a.shape}], [${b.shape}]`);
  const parts = Number(attrs?.parts);
  requireShuffleSplit(half, parts, SHUFFLE_SPLIT);
  const partShape = [n, h, w, (2 * half) / parts];
  if (backendName === 'wasm' && fitsShuffleSimd(half, parts)) {
    requireFloat32(a, 'a');
    requireFloat32(b, 'b');
    const outs = Array.from({length: parts}, () => (backend as WasmBackend).makeOutput(partShape, 'float32'));
    simdShuffleCopy(backend as WasmBackend, a, b, outs, half, true);
    return outs;
  }
  return runF32Kernel(backendName, backend, [a, b], Array.from({length: parts}, () => partShape),
    ([as, bs], outs) => shuffleCopy(as, bs, outs, half, true));
});

const joinConfigs = cpuAndWasmConfigs(SHUFFLE_JOIN, (backendName, {inputs, backend}) => {
  const parts = Object.keys(inputs).length;
  const infos = Array.from({length: parts}, (_, p) => inputs[`p${p}`]);
  const [n, h, w, width] = infos[0].shape;
  if (infos.some((info) => info.shape.length !== 4 || String(info.shape) !== String(infos[0].shape))) {
    throw new Error(`${SHUFFLE_JOIN}: need parts p0..p${parts - 1} of one NHWC shape`);
  }
  const half = (parts * width) / 2;
  requireShuffleSplit(half, parts, SHUFFLE_JOIN);
  if (backendName === 'wasm' && fitsShuffleSimd(half, parts)) {
    infos.forEach((info, p) => requireFloat32(info, `p${p}`));
    const [a, b] = [0, 1].map(() => (backend as WasmBackend).makeOutput([n, h, w, half], 'float32'));
    simdShuffleCopy(backend as WasmBackend, a, b, infos, half, false);
    return [a, b];
  }
  return runF32Kernel(backendName, backend, infos, [[n, h, w, half], [n, h, w, half]],
    (ins, [as, bs]) => shuffleCopy(as, bs, ins, half, false));
});

export const channelShuffleConfigs: KernelConfig[] = [...splitConfigs, ...joinConfigs];
