/**
 * The depthwise filter gradient dW[kh, kw, c] = Σ over batch and output pixels of
 * x[tap pixel, c]·dY[pixel, c] (channel multiplier 1, the model's), in WebAssembly SIMD on the
 * tensors in tfjs-wasm's heap. Four channels a vector, each product and sum in float64 lanes (a
 * product of two float32 values is exact there), so it sums as the JS loop it replaces does, only
 * in another order.
 *
 * One call per filter tap covers every image and output row whose tap pixel is inside the image
 * (tapRanges), a row at a time: the row's channels in blocks of 16 whose 8 float64x2 sums stay in
 * registers along the row, then are added into dW's float64 sums, which stay in L1 like the rows.
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {addTo, advanceBelow, countdown, END, functionCode, get, I32, i32, i32const, LOOP, moduleBytes, name, op, section, set, splat32, V128, vec} from '../../util/wasm-assembler.js';
import {disposeInfos, float64Scratch, float64Values, heapAddress, heapF32, heapKernels, tapRanges} from './kernel-utils.js';
import type {ConvGeometry, WasmBackend} from './kernel-utils.js';

/** Vectors (4 channels each) per block: the full blocks, then the one-vector tail. */
const BLOCKS = [4, 1] as const;
const blockName = (G: number) => `tap${G}` as `tap${(typeof BLOCKS)[number]}`;

/**
 * tap(x, dy, acc, images, rows, cols, xImage, dyImage, xRowStep, dyRowStep, xColStep, dyColStep,
 * channelBegin, channelEnd): x and dy address the tap's first pixel and its output pixel (image 0,
 * first row and column in range); acc the tap's float64 sums [C]; channel bounds in float32 bytes.
 */
function tapCode(G: number): number[] {
  const [x, dy, acc, images, rows, cols, xImage, dyImage, xRowStep, dyRowStep, xColStep, dyColStep, channelBegin, channelEnd] = Array.from({length: 14}, (_, i) => i);
  const [b, r, ch, xp, dp, cnt, xRow, dyRow, xImg, dyImg, at] = Array.from({length: 11}, (_, i) => 14 + i);
  const sums = 25; // 2G float64x2 sums, then a vector of x and one of dY
  const xv = sums + 2 * G;
  const dv = xv + 1;
  const upperToLower = op.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
  const widened = (local: number, h: number) => [...get(local), ...(h === 1 ? [...get(local), ...upperToLower] : []), ...op.promoteLow];
  const pixel = [
    ...Array.from({length: G}, (_, v) => [
      ...get(xp), ...op.load(16 * v), ...set(xv),
      ...get(dp), ...op.load(16 * v), ...set(dv),
      ...[0, 1].flatMap((h) => [...get(sums + 2 * v + h), ...widened(xv, h), ...widened(dv, h), ...op.dmul, ...op.dadd, ...set(sums + 2 * v + h)]),
    ]).flat(),
    ...addTo(xp, ...get(xColStep)),
    ...addTo(dp, ...get(dyColStep)),
    ...countdown(cnt),
  ];
  // acc is float64: channel byte offset ch (float32) is 2·ch there.
  const flush = [
    ...get(acc), ...get(ch), ...i32const(1), i32.shl, i32.add, ...set(at),
    ...Array.from({length: 2 * G}, (_, k) => [...get(at), ...get(at), ...op.load(16 * k), ...get(sums + k), ...op.dadd, ...op.store(16 * k)]).flat(),
  ];
  const block = [
    ...Array.from({length: 2 * G}, (_, k) => [...splat32(0), ...set(sums + k)]).flat(),
    ...get(xRow), ...get(ch), i32.add, ...set(xp),
    ...get(dyRow), ...get(ch), i32.add, ...set(dp),
    ...get(cols), ...set(cnt),
    ...LOOP, ...pixel, END,
    ...flush,
    ...advanceBelow(ch, channelEnd, ...i32const(16 * G)),
  ];
  const row = [
    ...get(channelBegin), ...set(ch),
    ...LOOP, ...block, END,
    ...addTo(xRow, ...get(xRowStep)),
    ...addTo(dyRow, ...get(dyRowStep)),
    ...countdown(r),
  ];
  const image = [
    ...get(xImg), ...set(xRow), ...get(dyImg), ...set(dyRow), ...get(rows), ...set(r),
    ...LOOP, ...row, END,
    ...addTo(xImg, ...get(xImage)),
    ...addTo(dyImg, ...get(dyImage)),
    ...countdown(b),
  ];
  const body = [...get(x), ...set(xImg), ...get(dy), ...set(dyImg), ...get(images), ...set(b), ...LOOP, ...image, END];
  return functionCode([[11, I32], [2 * G + 2, V128]], body);
}

/** Tap counts (rows × columns of a 3×3 filter) inside the image: one conv function each, unrolled. */
const TAP_SHAPES = [1, 2, 3].flatMap((nKh) => [1, 2, 3].map((nKw) => [nKh, nKw] as const));
const convName = (nKh: number, nKw: number) => `conv${nKh}x${nKw}` as `conv${1 | 2 | 3}x${1 | 2 | 3}`;

/**
 * conv(x, w, y, images, rows, cols, groups, xImageStep, yImageStep, xRowStep, yRowStep, xColStep,
 * xTapRow, wTapRow): the forward depthwise conv over a band of output rows × a segment of columns,
 * in every image, in which the same nKh × nKw taps are inside the image; x and w address the first
 * of them (for the first output pixel of image 0), y that pixel; `groups` vectors of 4 channels a
 * pixel. A group's nKh·nKw filter vectors stay in
 * registers while its pixels pass; each output sums its taps from 0 in float32, a column of taps
 * after another.
 */
function convCode(nKh: number, nKw: number): number[] {
  const taps = nKh * nKw;
  const [x, w, y, images, rows, cols, groups, xImageStep, yImageStep, xRowStep, yRowStep, xColStep, xTapRow, wTapRow] = Array.from({length: 14}, (_, i) => i);
  const [n, r, c, g, xi, yi, xr, yr, xp, yp, pixel] = Array.from({length: 11}, (_, k) => 14 + k);
  const offset = (t: number) => 25 + t; // x's byte offset of tap t from the pixel's first tap
  const filter = (t: number) => 25 + taps + t; // v128: the group's filter vector of tap t
  const acc = 25 + 2 * taps;
  // Tap t is (kh, kw) = (t mod nKh, ⌊t / nKh⌋): columns outer, XNNPACK's order (its packed filter
  // is [kW][kH]), so each output's sum is its depthwise kernel's, bit for bit.
  const tapOffset = (rowStride: number, t: number) => [...get(rowStride), ...i32const(t % nKh), i32.mul, ...get(pixel), ...i32const(Math.floor(t / nKh)), i32.mul, i32.add];
  const column = [
    ...splat32(0), ...set(acc),
    ...Array.from({length: taps}, (_, t) => [...get(acc), ...get(xp), ...get(offset(t)), i32.add, ...op.load(), ...get(filter(t)), ...op.fmul, ...op.fadd, ...set(acc)]).flat(),
    ...get(yp), ...get(acc), ...op.store(),
    ...addTo(xp, ...get(xColStep)), ...addTo(yp, ...get(pixel)),
    ...countdown(c),
  ];
  const row = [
    ...get(xr), ...set(xp), ...get(yr), ...set(yp), ...get(cols), ...set(c),
    ...LOOP, ...column, END,
    ...addTo(xr, ...get(xRowStep)), ...addTo(yr, ...get(yRowStep)),
    ...countdown(r),
  ];
  // Images outermost: one image's rows stay in L1 while its channel groups pass.
  const group = [
    ...Array.from({length: taps}, (_, t) => [...get(w), ...get(g), i32.add, ...tapOffset(wTapRow, t), i32.add, ...op.load(), ...set(filter(t))]).flat(),
    ...get(xi), ...get(g), i32.add, ...set(xr), ...get(yi), ...get(g), i32.add, ...set(yr), ...get(rows), ...set(r),
    ...LOOP, ...row, END,
    ...advanceBelow(g, pixel, ...i32const(16)),
  ];
  const image = [
    ...i32const(0), ...set(g),
    ...LOOP, ...group, END,
    ...addTo(xi, ...get(xImageStep)), ...addTo(yi, ...get(yImageStep)),
    ...countdown(n),
  ];
  const body = [
    ...get(groups), ...i32const(4), i32.shl, ...set(pixel),
    ...Array.from({length: taps}, (_, t) => [...tapOffset(xTapRow, t), ...set(offset(t))]).flat(),
    ...get(x), ...set(xi), ...get(y), ...set(yi), ...get(images), ...set(n),
    ...LOOP, ...image, END,
  ];
  return functionCode([[11 + taps, I32], [taps + 1, V128]], body);
}

function assemble(): Uint8Array {
  const signature = (params: number) => [0x60, ...vec(Array.from({length: params}, () => [I32])), ...vec([])];
  return moduleBytes(
    section(1, vec([signature(14), signature(14)])),
    section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    section(3, vec([...BLOCKS.map(() => [0]), ...TAP_SHAPES.map(() => [1])])),
    section(7, vec([
      ...BLOCKS.map((G, i) => [...name(blockName(G)), 0x00, i]),
      ...TAP_SHAPES.map(([nKh, nKw], i) => [...name(convName(nKh, nKw)), 0x00, BLOCKS.length + i]),
    ])),
    section(10, vec([...BLOCKS.map((G) => tapCode(G)), ...TAP_SHAPES.map(([nKh, nKw]) => convCode(nKh, nKw))])),
  );
}

type Tap = (x: number, dy: number, acc: number, images: number, rows: number, cols: number, xImage: number, dyImage: number, xRowStep: number, dyRowStep: number, xColStep: number, dyColStep: number, channelBegin: number, channelEnd: number) => void;
type Conv = (x: number, w: number, y: number, images: number, rows: number, cols: number, groups: number, xImageStep: number, yImageStep: number, xRowStep: number, yRowStep: number, xColStep: number, xTapRow: number, wTapRow: number) => void;
type Exports = Record<ReturnType<typeof blockName>, Tap> & Record<ReturnType<typeof convName>, Conv>;

/** Whether the SIMD filter gradient applies: channel multiplier 1 and channels a multiple of 4. */
export function fitsDepthwiseSimd(g: ConvGeometry): boolean {
  return g.outC === g.inC && g.inC % 4 === 0;
}

/** Whether the SIMD forward conv applies: that, and a 3×3 filter (its tap counts are unrolled). */
export function fitsDepthwiseConvSimd(g: ConvGeometry): boolean {
  return fitsDepthwiseSimd(g) && g.kH === 3 && g.kW === 3;
}

/** dW [kH, kW, C, 1] for x and dy in the wasm heap (fitsDepthwiseSimd(g) must hold). */
export function depthwiseFilterGradSimd(backend: WasmBackend, x: TensorInfo, dy: TensorInfo, g: ConvGeometry, filterShape: number[]): TensorInfo {
  const {batch, inH, inW, inC: C, outH, outW, kH, kW, strideH, strideW, padTop, padLeft} = g;
  const kernels = heapKernels<Exports>(backend, 'depthwise-simd', assemble);
  const taps = kH * kW;
  const sums = float64Scratch(backend, taps * C);
  const out = backend.makeOutput(filterShape, 'float32');
  try {
    const rowsOf = tapRanges(kH, strideH, padTop, inH, outH);
    const colsOf = tapRanges(kW, strideW, padLeft, inW, outW);
    const [xAt, dyAt] = [heapAddress(backend, x), heapAddress(backend, dy)];
    const pixel = 4 * C;
    const full = 16 * 4 * Math.floor(C / 16);
    for (let kh = 0; kh < kH; kh++) {
      const [oy0, rows] = [rowsOf.lo[kh], rowsOf.hi[kh] - rowsOf.lo[kh]];
      for (let kw = 0; kw < kW; kw++) {
        const [ox0, cols] = [colsOf.lo[kw], colsOf.hi[kw] - colsOf.lo[kw]];
        if (rows === 0 || cols === 0 || batch === 0) continue;
        const xFirst = xAt + ((oy0 * strideH - padTop + kh) * inW + ox0 * strideW - padLeft + kw) * pixel;
        const dyFirst = dyAt + (oy0 * outW + ox0) * pixel;
        const args = [xFirst, dyFirst, sums.base + 8 * (kh * kW + kw) * C, batch, rows, cols, inH * inW * pixel, outH * outW * pixel, strideH * inW * pixel, outW * pixel, strideW * pixel, pixel] as const;
        if (full > 0) kernels.tap4(...args, 0, full);
        if (full < pixel) kernels.tap1(...args, full, pixel);
      }
    }
    heapF32(backend, out).set(float64Values(backend, sums)); // rounds float64 → float32
  } finally {
    disposeInfos(backend, [sums.tensor]);
  }
  return out;
}

/**
 * Runs of output positions along one axis in which the same taps [k0, k1) are inside the input:
 * tap k is inside for output o when 0 ≤ o·stride − pad + k < inSize, a range of k for each o.
 */
function tapBands(filterSize: number, stride: number, pad: number, inSize: number, outSize: number): Array<{o0: number; o1: number; k0: number; k1: number}> {
  const bands: Array<{o0: number; o1: number; k0: number; k1: number}> = [];
  for (let o = 0; o < outSize; o++) {
    const k0 = Math.max(0, pad - o * stride);
    const k1 = Math.max(k0, Math.min(filterSize, inSize + pad - o * stride));
    const last = bands.at(-1);
    if (last && last.k0 === k0 && last.k1 === k1) last.o1 = o + 1;
    else bands.push({o0: o, o1: o + 1, k0, k1});
  }
  return bands;
}

/** The forward depthwise conv y [N, outH, outW, C] for x and w [3, 3, C, 1] in the wasm heap (fitsDepthwiseConvSimd(g) must hold). */
export function depthwiseConvSimd(backend: WasmBackend, x: TensorInfo, w: TensorInfo, g: ConvGeometry, outShape: number[]): TensorInfo {
  const {batch, inH, inW, inC: C, outH, outW, kW, strideH, strideW, padTop, padLeft} = g;
  const kernels = heapKernels<Exports>(backend, 'depthwise-simd', assemble);
  const y = backend.makeOutput(outShape, 'float32');
  const [xAt, wAt, yAt] = [heapAddress(backend, x), heapAddress(backend, w), heapAddress(backend, y)];
  const pixel = 4 * C;
  const rowBands = tapBands(g.kH, strideH, padTop, inH, outH);
  const colBands = tapBands(kW, strideW, padLeft, inW, outW);
  if (batch === 0) return y;
  for (const rb of rowBands) {
    for (const cb of colBands) {
      const [rows, cols, nKh, nKw] = [rb.o1 - rb.o0, cb.o1 - cb.o0, rb.k1 - rb.k0, cb.k1 - cb.k0];
      if (nKh === 0 || nKw === 0) {
        // No tap inside (padding beyond the filter): zeros.
        const view = heapF32(backend, y);
        for (let b = 0; b < batch; b++) {
          for (let oy = rb.o0; oy < rb.o1; oy++) view.fill(0, ((b * outH + oy) * outW + cb.o0) * C, ((b * outH + oy) * outW + cb.o1) * C);
        }
        continue;
      }
      const iy = rb.o0 * strideH - padTop + rb.k0;
      const ix = cb.o0 * strideW - padLeft + cb.k0;
      kernels[convName(nKh, nKw)](
        xAt + (iy * inW + ix) * pixel, wAt + (rb.k0 * kW + cb.k0) * pixel, yAt + (rb.o0 * outW + cb.o0) * pixel,
        batch, rows, cols, C / 4, inH * inW * pixel, outH * outW * pixel, strideH * inW * pixel, outW * pixel, strideW * pixel, inW * pixel, kW * pixel);
    }
  }
  return y;
}
