/**
 * DtrainBatchNormForward for tfjs-backend-wasm: training-mode BatchNorm's two full-size outputs in
 * one pass over x, y = x·scale + shift and x̂ = (x − mean)·invStd, instead of four broadcasting
 * kernels (Mul, Add, Sub, Mul) that each read and write the whole activation. Four lanes at a
 * time in WebAssembly SIMD, in a module that imports tfjs-wasm's own memory, so it reads and
 * writes the tensors where they lie. Each lane does the float32 multiply and add (or subtract and
 * multiply) the four kernels did, in the same order: the outputs are theirs bit for bit.
 * Channels must be a multiple of 4 (every ShuffleNetV2 width is); the caller falls back to tf ops.
 */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {get, I32, i32const, name, op, section, set, uleb, V128, vec} from '../../util/wasm-assembler.js';
import {heapF32, requireFloat32} from './kernel-utils.js';
import type {KernelArgs, WasmBackend} from './kernel-utils.js';

export const BATCH_NORM_FORWARD = 'DtrainBatchNormForward';

// forward(x, y, xhat, scale, shift, mean, invStd, rows, channelBytes): byte addresses in the heap.
const [X, Y, XHAT, SCALE, SHIFT, MEAN, INV_STD, ROWS, CHANNEL_BYTES] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const P = 9; // byte offset of the current 4 channels within a row's parameters
const V = 10; // the 4 x values

const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_LT_S = 0x48;
const I32_GT_S = 0x4a;
const TEE = 0x22;
const LOOP = [0x03, 0x40];
const BR_IF_LOOP = [0x0d, 0x00];
const END = 0x0b;

const param = (base: number) => [...get(base), ...get(P), I32_ADD, ...op.load()];
const advance = (local: number) => [...get(local), ...i32const(16), I32_ADD, ...set(local)];

/** The function's code entry: its size, locals P (i32) and V (v128), the two loops. */
function forwardCode(): number[] {
  const columns = [
    ...LOOP,
    ...get(X), ...op.load(), ...set(V),
    ...get(Y), ...get(V), ...param(SCALE), ...op.fmul, ...param(SHIFT), ...op.fadd, ...op.store(),
    ...get(XHAT), ...get(V), ...param(MEAN), ...op.fsub, ...param(INV_STD), ...op.fmul, ...op.store(),
    ...advance(X), ...advance(Y), ...advance(XHAT),
    ...get(P), ...i32const(16), I32_ADD, TEE, P, ...get(CHANNEL_BYTES), I32_LT_S, ...BR_IF_LOOP,
    END,
  ];
  const rows = [...LOOP, ...i32const(0), ...set(P), ...columns, ...get(ROWS), ...i32const(1), I32_SUB, TEE, ROWS, ...i32const(0), I32_GT_S, ...BR_IF_LOOP, END];
  const code = [...vec([[1, I32], [1, V128]]), ...rows, END];
  return [...uleb(code.length), ...code];
}

function assemble(): Uint8Array {
  const type = [0x60, ...vec(Array.from({length: 9}, () => [I32])), ...vec([])];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([type])),
    // import env.memory: a memory of at least 0 pages, no maximum
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name('forward'), 0x00, 0]])),
    ...section(10, vec([forwardCode()])),
  ]);
}

type Forward = (x: number, y: number, xhat: number, scale: number, shift: number, mean: number, invStd: number, rows: number, channelBytes: number) => void;

/** The global WebAssembly object (this project's TypeScript libs do not declare it). */
const wasm = (globalThis as unknown as {WebAssembly: {Module: new (bytes: Uint8Array) => object; Instance: new (module: object, imports: object) => {exports: {forward: Forward}}}}).WebAssembly;
let compiled: object | undefined;
/** One instance per tfjs-wasm memory (a backend re-created after tf.removeBackend has a new one). */
const instances = new WeakMap<object, Forward>();

function forwardFor(backend: WasmBackend): Forward {
  const memory = (backend as unknown as {wasm: {asm: {memory: object}}}).wasm.asm.memory;
  let forward = instances.get(memory);
  if (forward === undefined) {
    compiled ??= new wasm.Module(assemble());
    forward = new wasm.Instance(compiled, {env: {memory}}).exports.forward;
    instances.set(memory, forward);
  }
  return forward;
}

/** Whether the kernel applies: NHWC float32 with a channel count the 4-lane loop covers exactly. */
export function batchNormForwardFits(x: TensorInfo): boolean {
  return x.shape.length === 4 && x.shape[3] % 4 === 0 && x.shape[3] > 0 && x.shape[0] * x.shape[1] * x.shape[2] > 0;
}

function batchNormForward({inputs, backend}: KernelArgs): TensorInfo[] {
  const b = backend as WasmBackend;
  const {x, scale, shift, mean, invStd} = inputs;
  const channels = x.shape[3];
  for (const [what, t] of Object.entries({x, scale, shift, mean, invStd})) requireFloat32(t, what);
  if (!batchNormForwardFits(x) || [scale, shift, mean, invStd].some((t) => t.shape.length !== 1 || t.shape[0] !== channels)) {
    throw new Error(`${BATCH_NORM_FORWARD}: need NHWC x with channels a multiple of 4 and four [C] vectors, got [${x.shape}]`);
  }
  const y = b.makeOutput(x.shape, 'float32');
  const xhat = b.makeOutput(x.shape, 'float32');
  // Byte addresses after the allocations (which may grow the heap).
  const at = (t: TensorInfo) => heapF32(b, t).byteOffset;
  forwardFor(b)(at(x), at(y), at(xhat), at(scale), at(shift), at(mean), at(invStd), x.shape[0] * x.shape[1] * x.shape[2], channels * 4);
  return [y, xhat];
}

export const batchNormForwardConfig: KernelConfig = {kernelName: BATCH_NORM_FORWARD, backendName: 'wasm', kernelFunc: batchNormForward as unknown as KernelFunc};
