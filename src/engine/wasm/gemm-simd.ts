/**
 * A conv's filter gradient, dW = patchesᵀ·dY (patches [P, kH·kW·Cin], dY [P, Cout], P = N·H·W),
 * in WebAssembly SIMD on the tensors where they lie in tfjs-wasm's heap. Through XNNPACK this
 * product needs patchesᵀ copied out in JS and dY packed per call, and its M = Cin rows are few:
 * measured 6–23 GFLOP/s on 1×1 convs against 26–30 for their forward. Here dW is a sum of P outer
 * products, each patch row broadcast lane by lane against dY's row, so neither operand is
 * transposed (and for a 1×1 stride-1 conv, x is the patch matrix: nothing is copied at all).
 *
 * A tile of 4 rows × 8 columns of dW keeps its 8 accumulators in registers while P runs. Like
 * chunkedMatMul, the sum runs in float32 over blocks of GEMM_CHUNK pixels whose partial sums are
 * added in float64, then rounded once: the same error behaviour as the XNNPACK path.
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {BR_IF_LOOP, END, functionCode, get, I32, i32, i32const, LOOP, moduleBytes, name, op, section, set, splat32, V128, vec} from '../../util/wasm-assembler.js';
import {disposeInfos, GEMM_CHUNK, heapAddress, heapF32, heapKernels} from './kernel-utils.js';
import type {WasmBackend} from './kernel-utils.js';

/** Tile shapes: rows of dW × 4-lane vectors of columns (the last three cover the edges). */
const TILES = [[4, 2], [4, 1], [1, 2], [1, 1]] as const;
type TileName = `tile${(typeof TILES)[number][0]}x${(typeof TILES)[number][1]}`;
const tileName = (rows: number, vectors: number) => `tile${rows}x${vectors}` as TileName;

/**
 * tile(x, dy, acc, pixels, chunk, xStride, yStride, rowBegin, rowEnd, colBegin, colEnd): for the
 * rows × columns of dW in range (rows a multiple of R, columns of 4V), adds Σ_p x[p, r]·dY[p, c] to
 * the float64 acc [Cin, Cout]. Strides in bytes; acc's row stride is 2·yStride.
 */
function tileCode(R: number, V: number): number[] {
  const [x, dy, acc, pixels, chunk, xStride, yStride, rowBegin, rowEnd, colBegin, colEnd] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const [pb, n, tj, ti, xp, yp, cnt, c] = [11, 12, 13, 14, 15, 16, 17, 18];
  const sums = 19; // R·V float32x4 accumulators, then V columns of dY and one broadcast x value
  const sum = (r: number, v: number) => sums + r * V + v;
  const b = (v: number) => sums + R * V + v;
  const a = sums + R * V + V;
  const add = (local: number, ...value: number[]) => [...get(local), ...value, i32.add, ...set(local)];
  const pixel = [
    ...Array.from({length: V}, (_, v) => [...get(yp), ...op.load(16 * v), ...set(b(v))]).flat(),
    ...Array.from({length: R}, (_, r) => [
      ...get(xp), ...op.load32splat(4 * r), ...set(a),
      ...Array.from({length: V}, (_, v) => [...get(sum(r, v)), ...get(a), ...get(b(v)), ...op.fmul, ...op.fadd, ...set(sum(r, v))]).flat(),
    ]).flat(),
    ...add(xp, ...get(xStride)),
    ...add(yp, ...get(yStride)),
    ...get(cnt), ...i32const(1), i32.sub, i32.tee, cnt, ...i32const(0), i32.gtS, ...BR_IF_LOOP,
  ];
  const upperToLower = op.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
  // acc[ti + r][tj + 4v + 2h …] += the float32 sums, two lanes at a time widened to float64.
  const flush = Array.from({length: R}, (_, r) => [
    ...get(acc), ...get(ti), ...i32const(r), i32.add, ...get(yStride), i32.mul, ...i32const(1), i32.shl, i32.add, ...get(tj), ...i32const(3), i32.shl, i32.add, ...set(c),
    ...Array.from({length: V}, (_, v) => [0, 1].flatMap((h) => [
      ...get(c), ...get(c), ...op.load(32 * v + 16 * h), ...get(sum(r, v)), ...(h === 1 ? [...get(sum(r, v)), ...upperToLower] : []), ...op.promoteLow, ...op.dadd, ...op.store(32 * v + 16 * h),
    ])).flat(),
  ]).flat();
  const tile = [
    ...Array.from({length: R * V}, (_, k) => [...splat32(0), ...set(sums + k)]).flat(),
    ...get(x), ...get(pb), ...get(xStride), i32.mul, i32.add, ...get(ti), ...i32const(2), i32.shl, i32.add, ...set(xp),
    ...get(dy), ...get(pb), ...get(yStride), i32.mul, i32.add, ...get(tj), ...i32const(2), i32.shl, i32.add, ...set(yp),
    ...get(n), ...set(cnt),
    ...LOOP, ...pixel, END,
    ...flush,
  ];
  const rowsLoop = [...get(rowBegin), ...set(ti), ...LOOP, ...tile, ...get(ti), ...i32const(R), i32.add, i32.tee, ti, ...get(rowEnd), i32.ltS, ...BR_IF_LOOP, END];
  const colsLoop = [...get(colBegin), ...set(tj), ...LOOP, ...rowsLoop, ...get(tj), ...i32const(4 * V), i32.add, i32.tee, tj, ...get(colEnd), i32.ltS, ...BR_IF_LOOP, END];
  const body = [
    ...i32const(0), ...set(pb),
    ...LOOP,
    // n = min(chunk, pixels − pb)
    ...get(pixels), ...get(pb), i32.sub, ...set(n), ...get(n), ...get(chunk), ...get(n), ...get(chunk), i32.ltS, i32.select, ...set(n),
    ...colsLoop,
    ...get(pb), ...get(chunk), i32.add, i32.tee, pb, ...get(pixels), i32.ltS, ...BR_IF_LOOP,
    END,
  ];
  return functionCode([[8, I32], [R * V + V + 1, V128]], body);
}

function assemble(): Uint8Array {
  const signature = [0x60, ...vec(Array.from({length: 11}, () => [I32])), ...vec([])];
  return moduleBytes(
    section(1, vec([signature])),
    section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    section(3, vec(TILES.map(() => [0]))),
    section(7, vec(TILES.map(([R, V], i) => [...name(tileName(R, V)), 0x00, i]))),
    section(10, vec(TILES.map(([R, V]) => tileCode(R, V)))),
  );
}

/**
 * Rows of dW per pass over a block of pixels: the block's x columns for them (GEMM_CHUNK × 32 × 4
 * bytes = 32 KiB) stay in L1 while every column tile walks them. Measured on conv5 at size 1.5
 * (Cin 704, Cout 1024): 26 GFLOP/s at 32, 21–22 at 64–256, 18 unblocked.
 */
const ROW_BLOCK = 32;

type Tile = (x: number, dy: number, acc: number, pixels: number, chunk: number, xStride: number, yStride: number, rowBegin: number, rowEnd: number, colBegin: number, colEnd: number) => void;
type Exports = Record<TileName, Tile>;

/** Adds Σ_p a[p, :]ᵀ·b[p, :] for `pixels` rows of a [·, rows] and b [·, cols] at these heap byte addresses. */
export type AddOuterProducts = (a: number, b: number, pixels: number) => void;

/**
 * out [rows, cols] (given `outShape`) = Σ over every block `feed` hands to `add` of aᵀ·b, where a
 * is [pixels, rows] and b [pixels, cols] in the wasm heap; undefined (nothing allocated) where cols
 * is not a multiple of 4, which the tiles do not cover. `feed` may allocate (the heap may grow).
 */
export function sumOuterProducts(backend: WasmBackend, rows: number, cols: number, outShape: number[], feed: (add: AddOuterProducts) => void): TensorInfo | undefined {
  if (cols % 4 !== 0) return undefined;
  const kernels = heapKernels<Exports>(backend, 'gemm-simd', assemble);
  // The float64 sums, 8-byte aligned in a float32 scratch tensor.
  const scratch = backend.makeOutput([2 * rows * cols + 2], 'float32');
  const out = backend.makeOutput(outShape, 'float32');
  try {
    const base = Math.ceil(heapAddress(backend, scratch) / 8) * 8;
    new Float64Array(heapF32(backend, scratch).buffer, base, rows * cols).fill(0);
    const rows4 = rows - (rows % 4);
    const cols8 = cols - (cols % 8);
    feed((a, b, pixels) => {
      if (pixels === 0) return;
      const at = [a, b, base, pixels, GEMM_CHUNK, 4 * rows, 4 * cols] as const;
      const run = (R: number, V: number, rowBegin: number, rowEnd: number, colBegin: number, colEnd: number) => {
        if (rowBegin < rowEnd && colBegin < colEnd) kernels[tileName(R, V)](...at, rowBegin, rowEnd, colBegin, colEnd);
      };
      for (let r = 0; r < rows4; r += ROW_BLOCK) {
        run(4, 2, r, Math.min(rows4, r + ROW_BLOCK), 0, cols8);
        run(4, 1, r, Math.min(rows4, r + ROW_BLOCK), cols8, cols);
      }
      run(1, 2, rows4, rows, 0, cols8);
      run(1, 1, rows4, rows, cols8, cols);
    });
    // Views after feed's allocations; rounds float64 → float32.
    heapF32(backend, out).set(new Float64Array(heapF32(backend, scratch).buffer, base, rows * cols));
  } catch (err) {
    disposeInfos(backend, [out]);
    throw err;
  } finally {
    disposeInfos(backend, [scratch]);
  }
  return out;
}
