/**
 * The channel shuffle's copies (channel-shuffle.ts) in WebAssembly SIMD on tfjs-wasm's heap: four
 * channels of each half a vector, interleaved into two vectors of a part (a0 b0 a1 b1 | a2 b2 a3
 * b3) by one shuffle each, or taken apart again for the gradient. Plain copies: the same bits.
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {addTo, countdown, END, functionCode, get, I32, i32, i32const, LOOP, moduleBytes, name, op, section, set, V128, vec} from '../../util/wasm-assembler.js';
import {heapAddress, heapKernels} from './kernel-utils.js';
import type {WasmBackend} from './kernel-utils.js';

/**
 * copy(a, b, part, pixels, halfBytes, partBytes, groups): for each pixel, `groups` vectors of a and
 * of b (from a + pixel·halfBytes, likewise b) ↔ 2·groups vectors of the part (from part +
 * pixel·partBytes); `interleave` writes the part, otherwise the halves.
 */
function copyCode(interleave: boolean): number[] {
  const [a, b, part, pixels, halfBytes, partBytes, groups] = [0, 1, 2, 3, 4, 5, 6];
  const [ap, bp, pp, g, va, vb] = [7, 8, 9, 10, 11, 12];
  const lanes = (first: number) => [0, 1, 2, 3].map((i) => first + i);
  const body = interleave
    ? [
        ...get(ap), ...op.load(), ...set(va),
        ...get(bp), ...op.load(), ...set(vb),
        ...get(pp), ...get(va), ...get(vb), ...op.shuffle([...lanes(0), ...lanes(16), ...lanes(4), ...lanes(20)]), ...op.store(),
        ...get(pp), ...get(va), ...get(vb), ...op.shuffle([...lanes(8), ...lanes(24), ...lanes(12), ...lanes(28)]), ...op.store(16),
      ]
    : [
        ...get(pp), ...op.load(), ...set(va),
        ...get(pp), ...op.load(16), ...set(vb),
        ...get(ap), ...get(va), ...get(vb), ...op.shuffle([...lanes(0), ...lanes(8), ...lanes(16), ...lanes(24)]), ...op.store(),
        ...get(bp), ...get(va), ...get(vb), ...op.shuffle([...lanes(4), ...lanes(12), ...lanes(20), ...lanes(28)]), ...op.store(),
      ];
  const pixel = [
    ...get(groups), ...set(g),
    ...LOOP, ...body, ...addTo(ap, ...i32const(16)), ...addTo(bp, ...i32const(16)), ...addTo(pp, ...i32const(32)), ...countdown(g), END,
  ];
  // Each pixel's vectors start a row of the halves and of the part; the loop above moved the
  // pointers by groups·16 (halves) and groups·32 (part), so the rows' remainders are skipped here.
  const skip = (local: number, stride: number, used: number) => [...get(local), ...get(stride), i32.add, ...get(groups), ...i32const(used), i32.mul, i32.sub, ...set(local)];
  const loop = [
    ...LOOP, ...pixel,
    ...skip(ap, halfBytes, 16), ...skip(bp, halfBytes, 16), ...skip(pp, partBytes, 32),
    ...countdown(pixels), END,
  ];
  return functionCode([[4, I32], [2, V128]], [...get(a), ...set(ap), ...get(b), ...set(bp), ...get(part), ...set(pp), ...loop]);
}

function assemble(): Uint8Array {
  const signature = [0x60, ...vec(Array.from({length: 7}, () => [I32])), ...vec([])];
  return moduleBytes(
    section(1, vec([signature])),
    section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    section(3, vec([[0], [0]])),
    section(7, vec([[...name('interleave'), 0x00, 0], [...name('deinterleave'), 0x00, 1]])),
    section(10, vec([copyCode(true), copyCode(false)])),
  );
}

type Copy = (a: number, b: number, part: number, pixels: number, halfBytes: number, partBytes: number, groups: number) => void;

/** Whether the SIMD copies apply: each part takes a multiple of 4 channels from each half. */
export function fitsShuffleSimd(half: number, parts: number): boolean {
  return ((2 * half) / parts / 2) % 4 === 0;
}

/**
 * shuffleCopy on the wasm heap (fitsShuffleSimd must hold): halves a, b [pixels, half] ↔ parts
 * [pixels, 2·half / parts.length]; into the parts when `toParts`.
 */
export function simdShuffleCopy(backend: WasmBackend, a: TensorInfo, b: TensorInfo, parts: TensorInfo[], half: number, toParts: boolean): void {
  const kernels = heapKernels<{interleave: Copy; deinterleave: Copy}>(backend, 'channel-shuffle-simd', assemble);
  const pixels = a.shape.slice(0, -1).reduce((x, y) => x * y, 1);
  if (pixels === 0) return;
  const fromEach = half / parts.length; // channels a part takes from each half
  const copy = toParts ? kernels.interleave : kernels.deinterleave;
  parts.forEach((part, p) => {
    const first = 4 * p * fromEach;
    copy(heapAddress(backend, a) + first, heapAddress(backend, b) + first, heapAddress(backend, part), pixels, 4 * half, 8 * fromEach, fromEach / 4);
  });
}
