/**
 * The two products of a conv's backward that XNNPACK serves badly, in WebAssembly SIMD on the
 * tensors where they lie in tfjs-wasm's heap (a module that imports its memory):
 *
 * - tn, C = Aᵀ·B — the filter gradient dW = patchesᵀ·dY (patches [P, kH·kW·Cin], dY [P, Cout],
 *   P = N·H·W). Through XNNPACK it needs patchesᵀ copied out in JS and dY packed per call, and its
 *   M = Cin rows are few: measured 6–23 GFLOP/s on 1×1 convs against 26–30 for their forward. Here
 *   dW is a sum of P outer products, each patch row broadcast lane by lane against dY's row, so
 *   neither operand is transposed (for a 1×1 stride-1 conv x is the patch matrix: no copy at all).
 * - nn, C = A·B — the input gradient of a 1×1 conv, dX = dY·Wᵀ, where the sum over Cout is
 *   chunked: through XNNPACK each chunk of dY's columns was copied out first (10–20 GFLOP/s on
 *   the wide layers); here the chunks are ranges of the same loop, on dY in place.
 *
 * A tile of 4 rows × 8 columns of C keeps its 8 float32x4 sums in registers while the terms run.
 * As in chunkedMatMul, the sums run in float32 over at most GEMM_CHUNK terms, and chunks' partial
 * sums are added in float64, then rounded once: XNNPACK's error behaviour, the same bits where one
 * chunk covers the sum (both add the terms in order).
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {addTo, advanceBelow, countdown, END, functionCode, get, I32, i32, i32const, LOOP, moduleBytes, name, op, section, set, splat32, V128, vec} from '../../util/wasm-assembler.js';
import {disposeInfos, float64Scratch, float64Values, GEMM_CHUNK, heapAddress, heapF32, heapKernels} from './kernel-utils.js';
import type {Float64Scratch, WasmBackend} from './kernel-utils.js';

/** Tile shapes: rows × 4-lane vectors of columns of the result (the last three cover the edges). */
const TILES = [[4, 2], [4, 1], [1, 2], [1, 1]] as const;
/** How a tile's float32 sums leave the registers: added into float64 sums, or stored as the result. */
const FLUSHES = ['acc', 'store'] as const;
type Flush = (typeof FLUSHES)[number];
type KernelName = `${'tn' | 'nn'}${(typeof TILES)[number][0]}x${(typeof TILES)[number][1]}${Flush}`;
const kernelName = (form: 'tn' | 'nn', R: number, V: number, flush: Flush) => `${form}${R}x${V}${flush}` as KernelName;

/** Every kernel's parameters (i32): operands, the range of the sum, strides in bytes, the tiles' range. */
const [A, B, C, FROM, COUNT, A_STRIDE, B_STRIDE, ROW_BEGIN, ROW_END, COL_BEGIN, COL_END] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const PARAMS = 11;
/** i32 locals: the tile's row and column, the sum's counter, C's address, B's pointer, A's pointers. */
const [TI, TJ, CNT, C_AT, BP, AP] = [11, 12, 13, 14, 15, 16];
const I32_LOCALS = 5 + 4;
const SUMS = PARAMS + I32_LOCALS; // R·V float32x4 sums, then V vectors of B and one broadcast A value

const loopWhileBelow = (counter: number, step: number, end: number, body: number[]) =>
  [...LOOP, ...body, ...advanceBelow(counter, end, ...i32const(step)), END];

/**
 * One tile: zero R·V sums, then for COUNT terms add a_r · B's V vectors (a_r broadcast by
 * `loadA(r)`), `advance` moving the pointers to the next term; then `flush` the sums to C.
 */
function tileBody(R: number, V: number, loadA: (r: number) => number[], advance: number[], flush: number[]): number[] {
  const sum = (r: number, v: number) => SUMS + r * V + v;
  const b = (v: number) => SUMS + R * V + v;
  const a = SUMS + R * V + V;
  const term = [
    ...Array.from({length: V}, (_, v) => [...get(BP), ...op.load(16 * v), ...set(b(v))]).flat(),
    ...Array.from({length: R}, (_, r) => [
      ...loadA(r), ...set(a),
      ...Array.from({length: V}, (_, v) => [...get(sum(r, v)), ...get(a), ...get(b(v)), ...op.fmul, ...op.fadd, ...set(sum(r, v))]).flat(),
    ]).flat(),
    ...advance,
    ...countdown(CNT),
  ];
  return [
    ...Array.from({length: R * V}, (_, k) => [...splat32(0), ...set(SUMS + k)]).flat(),
    ...get(COUNT), ...set(CNT),
    ...LOOP, ...term, END,
    ...flush,
  ];
}

/**
 * The tile's sums into C at rows TI.., column TJ (C has B's columns, so its rows are B_STRIDE
 * bytes apart as float32, twice that as float64): 'acc' adds them into float64 sums two lanes at
 * a time, 'store' writes them as float32.
 */
function flushCode(R: number, V: number, flush: Flush): number[] {
  const upperToLower = op.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
  const sum = (r: number, v: number) => SUMS + r * V + v;
  const width = flush === 'acc' ? 3 : 2; // log2 of an element's bytes in C
  return Array.from({length: R}, (_, r) => [
    ...get(C), ...get(TI), ...i32const(r), i32.add, ...get(B_STRIDE), ...(flush === 'acc' ? [...i32const(1), i32.shl] : []), i32.mul, i32.add, ...get(TJ), ...i32const(width), i32.shl, i32.add, ...set(C_AT),
    ...Array.from({length: V}, (_, v) => flush === 'store'
      ? [...get(C_AT), ...get(sum(r, v)), ...op.store(16 * v)]
      : [0, 1].flatMap((h) => [
          ...get(C_AT), ...get(C_AT), ...op.load(32 * v + 16 * h), ...get(sum(r, v)), ...(h === 1 ? [...get(sum(r, v)), ...upperToLower] : []), ...op.promoteLow, ...op.dadd, ...op.store(32 * v + 16 * h),
        ])).flat(),
  ]).flat();
}

/**
 * tn: C[r, c] (+)= Σ_{p ∈ [FROM, FROM+COUNT)} A[p, r]·B[p, c] — A [·, M], B [·, N], C [M, N]: a
 * sum of outer products (dW = xᵀ·dY). Tiles walk rows inside columns, so a column strip of B's
 * block stays in L1 while the rows pass.
 */
function tnCode(R: number, V: number, flush: Flush): number[] {
  const start = (base: number, stride: number, index: number) =>
    [...get(base), ...get(FROM), ...get(stride), i32.mul, i32.add, ...get(index), ...i32const(2), i32.shl, i32.add];
  const tile = [
    ...start(A, A_STRIDE, TI), ...set(AP),
    ...start(B, B_STRIDE, TJ), ...set(BP),
    ...tileBody(R, V, (r) => [...get(AP), ...op.load32splat(4 * r)], [...addTo(AP, ...get(A_STRIDE)), ...addTo(BP, ...get(B_STRIDE))],
      flushCode(R, V, flush)),
  ];
  const body = [...get(COL_BEGIN), ...set(TJ), ...loopWhileBelow(TJ, 4 * V, COL_END, [...get(ROW_BEGIN), ...set(TI), ...loopWhileBelow(TI, R, ROW_END, tile)])];
  return functionCode([[I32_LOCALS, I32], [R * V + V + 1, V128]], body);
}

/**
 * nn: C[i, c] (+)= Σ_{k ∈ [FROM, FROM+COUNT)} A[i, k]·B[k, c] — A [M, K], B [K, N], C [M, N]: a
 * plain product (dX = dY·Wᵀ). Tiles walk columns inside rows, so A's R rows stay in L1; each row
 * has its own pointer.
 */
function nnCode(R: number, V: number, flush: Flush): number[] {
  const ap = (r: number) => AP + r;
  const tile = [
    ...Array.from({length: R}, (_, r) => [...get(A), ...get(TI), ...i32const(r), i32.add, ...get(A_STRIDE), i32.mul, i32.add, ...get(FROM), ...i32const(2), i32.shl, i32.add, ...set(ap(r))]).flat(),
    ...get(B), ...get(FROM), ...get(B_STRIDE), i32.mul, i32.add, ...get(TJ), ...i32const(2), i32.shl, i32.add, ...set(BP),
    ...tileBody(R, V, (r) => [...get(ap(r)), ...op.load32splat()], [...Array.from({length: R}, (_, r) => addTo(ap(r), ...i32const(4))).flat(), ...addTo(BP, ...get(B_STRIDE))],
      flushCode(R, V, flush)),
  ];
  const body = [...get(ROW_BEGIN), ...set(TI), ...loopWhileBelow(TI, R, ROW_END, [...get(COL_BEGIN), ...set(TJ), ...loopWhileBelow(TJ, 4 * V, COL_END, tile)])];
  return functionCode([[I32_LOCALS, I32], [R * V + V + 1, V128]], body);
}

// tn always adds into float64 sums (its terms are pixels, always many); nn stores where one chunk covers its terms.
const KERNELS = [
  ...TILES.map(([R, V]) => ({form: 'tn' as const, R, V, flush: 'acc' as const})),
  ...TILES.flatMap(([R, V]) => FLUSHES.map((flush) => ({form: 'nn' as const, R, V, flush}))),
];

function assemble(): Uint8Array {
  const signature = [0x60, ...vec(Array.from({length: PARAMS}, () => [I32])), ...vec([])];
  return moduleBytes(
    section(1, vec([signature])),
    section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    section(3, vec(KERNELS.map(() => [0]))),
    section(7, vec(KERNELS.map(({form, R, V, flush}, i) => [...name(kernelName(form, R, V, flush)), 0x00, i]))),
    section(10, vec(KERNELS.map(({form, R, V, flush}) => (form === 'tn' ? tnCode : nnCode)(R, V, flush)))),
  );
}

/**
 * Rows of dW per pass over a block of pixels: the block's x columns for them (GEMM_CHUNK × 32 × 4
 * bytes = 32 KiB) stay in L1 while every column tile walks them. Measured on conv5 at size 1.5
 * (Cin 704, Cout 1024): 26 GFLOP/s at 32, 21–22 at 64–256, 18 unblocked.
 */
const ROW_BLOCK = 32;

type Kernel = (a: number, b: number, c: number, from: number, count: number, aStride: number, bStride: number, rowBegin: number, rowEnd: number, colBegin: number, colEnd: number) => void;
type Exports = Record<KernelName, Kernel>;

/**
 * Runs `form`'s kernels over rows × cols of C (cols a multiple of 4) for terms [from, from+count):
 * 4×8 tiles, then the edge tiles; tn's rows in blocks of ROW_BLOCK.
 */
function runTiles(kernels: Exports, form: 'tn' | 'nn', flush: Flush, rows: number, cols: number, rowBlock: number, args: readonly [number, number, number, number, number, number, number]): void {
  const rows4 = rows - (rows % 4);
  const cols8 = cols - (cols % 8);
  const run = (R: number, V: number, rowBegin: number, rowEnd: number, colBegin: number, colEnd: number) => {
    if (rowBegin < rowEnd && colBegin < colEnd) kernels[kernelName(form, R, V, flush)](...args, rowBegin, rowEnd, colBegin, colEnd);
  };
  for (let r = 0; r < rows4; r += rowBlock) {
    run(4, 2, r, Math.min(rows4, r + rowBlock), 0, cols8);
    run(4, 1, r, Math.min(rows4, r + rowBlock), cols8, cols);
  }
  run(1, 2, rows4, rows, 0, cols8);
  run(1, 1, rows4, rows, cols8, cols);
}

/** Rounds the float64 sums into `out` (views taken now: call after every allocation). */
function roundInto(backend: WasmBackend, sums: Float64Scratch, out: TensorInfo): void {
  heapF32(backend, out).set(float64Values(backend, sums));
}

/**
 * out [rows, cols] (given `outShape`) = a·b for a [rows, inner] and b [inner, cols] at these heap
 * byte addresses (cols a multiple of 4): float32 sums over GEMM_CHUNK terms, added in float64
 * where there are more.
 */
export function matMulNN(backend: WasmBackend, a: TensorInfo, b: TensorInfo, rows: number, inner: number, cols: number, outShape: number[]): TensorInfo {
  const kernels = heapKernels<Exports>(backend, 'gemm-simd', assemble);
  const out = backend.makeOutput(outShape, 'float32');
  if (inner <= GEMM_CHUNK) {
    runTiles(kernels, 'nn', 'store', rows, cols, rows, [heapAddress(backend, a), heapAddress(backend, b), heapAddress(backend, out), 0, inner, 4 * inner, 4 * cols]);
    return out;
  }
  const sums = float64Scratch(backend, rows * cols);
  try {
    for (let k0 = 0; k0 < inner; k0 += GEMM_CHUNK) {
      runTiles(kernels, 'nn', 'acc', rows, cols, rows, [heapAddress(backend, a), heapAddress(backend, b), sums.base, k0, Math.min(GEMM_CHUNK, inner - k0), 4 * inner, 4 * cols]);
    }
    roundInto(backend, sums, out);
  } finally {
    disposeInfos(backend, [sums.tensor]);
  }
  return out;
}

/** Adds Σ_p a[p, :]ᵀ·b[p, :] for `pixels` rows of a [·, rows] and b [·, cols] at these heap byte addresses. */
type AddOuterProducts = (a: number, b: number, pixels: number) => void;

/**
 * out [rows, cols] (given `outShape`) = Σ over every block `feed` hands to `add` of aᵀ·b, where a
 * is [pixels, rows] and b [pixels, cols] in the wasm heap; undefined (nothing allocated) where cols
 * is not a multiple of 4, which the tiles do not cover. `feed` may allocate (the heap may grow).
 */
export function sumOuterProducts(backend: WasmBackend, rows: number, cols: number, outShape: number[], feed: (add: AddOuterProducts) => void): TensorInfo | undefined {
  if (cols % 4 !== 0) return undefined;
  const kernels = heapKernels<Exports>(backend, 'gemm-simd', assemble);
  const out = backend.makeOutput(outShape, 'float32');
  const sums = float64Scratch(backend, rows * cols);
  try {
    feed((a, b, pixels) => {
      for (let p0 = 0; p0 < pixels; p0 += GEMM_CHUNK) {
        runTiles(kernels, 'tn', 'acc', rows, cols, ROW_BLOCK, [a, b, sums.base, p0, Math.min(GEMM_CHUNK, pixels - p0), 4 * rows, 4 * cols]);
      }
    });
    // After feed's allocations.
    roundInto(backend, sums, out);
  } catch (err) {
    disposeInfos(backend, [out]);
    throw err;
  } finally {
    disposeInfos(backend, [sums.tensor]);
  }
  return out;
}
