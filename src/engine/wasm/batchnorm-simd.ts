/**
 * Training-mode BatchNorm's full-size passes for tfjs-backend-wasm in WebAssembly SIMD, in a
 * module that imports tfjs-wasm's own memory, so they read and write the tensors where they lie:
 *
 * - DtrainBatchNormForward: y = x·scale + shift and x̂ = (x − mean)·invStd in one pass over x,
 *   instead of four broadcasting kernels (Mul, Add, Sub, Mul) that each read and write the whole
 *   activation. Each lane does the float32 operations those kernels did, in the same order.
 * - `simdInputGradient`, the dx pass of DtrainBatchNormGrad: dx = a·dy − o − b·x̂ per channel,
 *   in float64 lanes rounded once to float32, as the JS loop computes it.
 *
 * Both give the other paths' results bit for bit. Channels must be a multiple of 4 (every
 * ShuffleNetV2 width is); callers fall back otherwise.
 */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {addTo, advanceBelow, countdown, END, functionCode, get, I32, i32, i32const, LOOP, moduleBytes, name, op, section, set, V128, vec} from '../../util/wasm-assembler.js';
import {simdMoments} from './channel-sums-simd.js';
import {disposeInfos, float64Scratch, float64Values, heapAddress, heapF32, heapKernels, requireFloat32} from './kernel-utils.js';
import type {KernelArgs, WasmBackend} from './kernel-utils.js';

export const BATCH_NORM_FORWARD = 'DtrainBatchNormForward';
export const BATCH_NORM_TRAIN_FORWARD = 'DtrainBatchNormTrainForward';

/**
 * One function's code entry: for rows × (channels / 4), run `body`, then advance each of `streams`
 * (locals holding byte addresses of [rows, C] float32 data) by 16 bytes; local `p` is the byte
 * offset of the current 4 channels in a row (0, 16, …), for the per-channel parameters.
 */
function rowLoop(rows: number, channelBytes: number, p: number, streams: number[], locals: number[][], body: number[]): number[] {
  const advance = streams.flatMap((local) => addTo(local, ...i32const(16)));
  const columns = [...LOOP, ...body, ...advance, ...advanceBelow(p, channelBytes, ...i32const(16)), END];
  const loops = [...LOOP, ...i32const(0), ...set(p), ...columns, ...countdown(rows), END];
  return functionCode(locals, loops);
}

/** forward(x, y, xhat, scale, shift, mean, invStd, rows, channelBytes); locals p, v. */
function forwardCode(): number[] {
  const [x, y, xhat, scale, shift, mean, invStd, rows, channelBytes, p, v] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const param = (base: number) => [...get(base), ...get(p), i32.add, ...op.load()];
  const body = [
    ...get(x), ...op.load(), ...set(v),
    ...get(y), ...get(v), ...param(scale), ...op.fmul, ...param(shift), ...op.fadd, ...op.store(),
    ...get(xhat), ...get(v), ...param(mean), ...op.fsub, ...param(invStd), ...op.fmul, ...op.store(),
  ];
  return rowLoop(rows, channelBytes, p, [x, y, xhat], [[1, I32], [1, V128]], body);
}

/** inputGradient(dy, xhat, dx, a, o, b, rows, channelBytes), a/o/b float64 per channel; locals p, vdy, vxh. */
function inputGradientCode(): number[] {
  const [dy, xhat, dx, a, o, b, rows, channelBytes, p, vdy, vxh] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  // float64 parameters of channels c, c+1 (half 0) or c+2, c+3 (half 1): byte 2p + 16·half.
  const param = (base: number, half: number) => [...get(base), ...get(p), ...get(p), i32.add, i32.add, ...op.load(16 * half)];
  const upperToLower = op.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
  const lanes = (half: number) => {
    const widen = (local: number) => [...get(local), ...(half === 1 ? [...get(local), ...upperToLower] : []), ...op.promoteLow];
    return [...widen(vdy), ...param(a, half), ...op.dmul, ...param(o, half), ...op.dsub, ...widen(vxh), ...param(b, half), ...op.dmul, ...op.dsub, ...op.demote];
  };
  const body = [
    ...get(dy), ...op.load(), ...set(vdy),
    ...get(xhat), ...op.load(), ...set(vxh),
    ...get(dx), ...lanes(0), ...lanes(1), ...op.shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]), ...op.store(),
  ];
  return rowLoop(rows, channelBytes, p, [dy, xhat, dx], [[1, I32], [2, V128]], body);
}

function assemble(): Uint8Array {
  const signature = (params: number) => [0x60, ...vec(Array.from({length: params}, () => [I32])), ...vec([])];
  return moduleBytes(
    section(1, vec([signature(9), signature(8)])),
    // import env.memory: a memory of at least 0 pages, no maximum
    section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    section(3, vec([[0], [1]])),
    section(7, vec([[...name('forward'), 0x00, 0], [...name('inputGradient'), 0x00, 1]])),
    section(10, vec([forwardCode(), inputGradientCode()])),
  );
}

interface Exports {
  forward(x: number, y: number, xhat: number, scale: number, shift: number, mean: number, invStd: number, rows: number, channelBytes: number): void;
  inputGradient(dy: number, xhat: number, dx: number, a: number, o: number, b: number, rows: number, channelBytes: number): void;
}

const kernelsFor = (backend: WasmBackend) => heapKernels<Exports>(backend, 'batchnorm-simd', assemble);

/** Whether the SIMD passes apply: NHWC float32 with a channel count the 4-lane loop covers exactly. */
export function fitsSimdPasses(x: TensorInfo): boolean {
  return x.shape.length === 4 && x.shape[3] % 4 === 0 && x.shape[3] > 0 && x.shape[0] * x.shape[1] * x.shape[2] > 0;
}

function batchNormForward({inputs, backend}: KernelArgs): TensorInfo[] {
  const b = backend as WasmBackend;
  const {x, scale, shift, mean, invStd} = inputs;
  const channels = x.shape[3];
  for (const [what, t] of Object.entries({x, scale, shift, mean, invStd})) requireFloat32(t, what);
  if (!fitsSimdPasses(x) || [scale, shift, mean, invStd].some((t) => t.shape.length !== 1 || t.shape[0] !== channels)) {
    throw new Error(`${BATCH_NORM_FORWARD}: need NHWC x with channels a multiple of 4 and four [C] vectors, got [${x.shape}]`);
  }
  const y = b.makeOutput(x.shape, 'float32');
  const xhat = b.makeOutput(x.shape, 'float32');
  // Byte addresses after the allocations (which may grow the heap).
  const at = (t: TensorInfo) => heapAddress(b, t);
  kernelsFor(b).forward(at(x), at(y), at(xhat), at(scale), at(shift), at(mean), at(invStd), x.shape[0] * x.shape[1] * x.shape[2], channels * 4);
  return [y, xhat];
}

export const batchNormForwardConfig: KernelConfig = {kernelName: BATCH_NORM_FORWARD, backendName: 'wasm', kernelFunc: batchNormForward as unknown as KernelFunc};

/**
 * Training-mode BatchNorm's whole forward in one kernel: the batch moments (channel-sums-simd.ts),
 * then per channel invStd = rsqrt(variance + eps), scale = γ·invStd, shift = β − mean·scale, each
 * rounded to float32 as wasm's own ops round them (its Rsqrt is 1/sqrt, rounded twice), then the
 * one-pass y and x̂ above. Outputs [y, x̂, scale, mean, variance]: the seven kernels it replaces
 * give the same bits (tested); a step makes 6 × 56 fewer kernel calls at ShuffleNetV2's 56
 * BatchNorms.
 */
function batchNormTrainForward({inputs, backend, attrs}: KernelArgs): TensorInfo[] {
  const b = backend as WasmBackend;
  const {x, gamma, beta} = inputs;
  const channels = x.shape[3];
  for (const [what, t] of Object.entries({x, gamma, beta})) requireFloat32(t, what);
  if (!fitsSimdPasses(x) || [gamma, beta].some((t) => t.shape.length !== 1 || t.shape[0] !== channels)) {
    throw new Error(`${BATCH_NORM_TRAIN_FORWARD}: need NHWC x with channels a multiple of 4 and γ, β of [C], got [${x.shape}]`);
  }
  const rows = x.shape[0] * x.shape[1] * x.shape[2];
  const moments = simdMoments(b, x);
  const f = Math.fround;
  const eps = f(Number(attrs?.epsilon));
  const [y, xhat] = [b.makeOutput(x.shape, 'float32'), b.makeOutput(x.shape, 'float32')];
  const [scale, mean, variance, shift, invStd] = [0, 1, 2, 3, 4].map(() => b.makeOutput([channels], 'float32'));
  try {
    // Views after every allocation (they may grow the heap).
    const [g, be, sc, m, v, sh, inv] = [gamma, beta, scale, mean, variance, shift, invStd].map((t) => heapF32(b, t));
    for (let c = 0; c < channels; c++) {
      m[c] = moments.mean[c];
      v[c] = moments.variance[c];
      inv[c] = f(1 / f(Math.sqrt(f(v[c] + eps))));
      sc[c] = f(g[c] * inv[c]);
      sh[c] = f(be[c] - f(m[c] * sc[c]));
    }
    const at = (t: TensorInfo) => heapAddress(b, t);
    kernelsFor(b).forward(at(x), at(y), at(xhat), at(scale), at(shift), at(mean), at(invStd), rows, channels * 4);
  } finally {
    disposeInfos(b, [shift, invStd]);
  }
  return [y, xhat, scale, mean, variance];
}

export const batchNormTrainForwardConfig: KernelConfig = {kernelName: BATCH_NORM_TRAIN_FORWARD, backendName: 'wasm', kernelFunc: batchNormTrainForward as unknown as KernelFunc};

/**
 * dx = a·dy − o − b·x̂ (a, o, b per channel, float64) for dy and x̂ in the wasm heap, into dx there;
 * returns false, doing nothing, where the channels are not a multiple of 4.
 */
export function simdInputGradient(backend: WasmBackend, dy: TensorInfo, xhat: TensorInfo, dx: TensorInfo, a: Float64Array, o: Float64Array, b: Float64Array): boolean {
  if (!fitsSimdPasses(dy)) return false;
  const channels = a.length;
  // The factors go into the heap as float64.
  const scratch = float64Scratch(backend, 3 * channels);
  try {
    const factors = float64Values(backend, scratch);
    factors.set(a);
    factors.set(o, channels);
    factors.set(b, 2 * channels);
    const at = (t: TensorInfo) => heapAddress(backend, t);
    const {base} = scratch;
    kernelsFor(backend).inputGradient(at(dy), at(xhat), at(dx), base, base + 8 * channels, base + 16 * channels, dy.shape[0] * dy.shape[1] * dy.shape[2], channels * 4);
  } finally {
    disposeInfos(backend, [scratch.tensor]);
  }
  return true;
}
