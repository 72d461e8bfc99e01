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

import {BR_IF_LOOP, END, functionCode, get, I32, i32, i32const, LOOP, moduleBytes, name, op, section, set, splat32, V128, vec} from '../../util/wasm-assembler.js';
import {disposeInfos, heapAddress, heapF32, heapKernels, tapRanges} from './kernel-utils.js';
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
  const add = (local: number, step: number[]) => [...get(local), ...step, i32.add, ...set(local)];
  const countdown = (counter: number) => [...get(counter), ...i32const(1), i32.sub, i32.tee, counter, ...i32const(0), i32.gtS, ...BR_IF_LOOP];
  const pixel = [
    ...Array.from({length: G}, (_, v) => [
      ...get(xp), ...op.load(16 * v), ...set(xv),
      ...get(dp), ...op.load(16 * v), ...set(dv),
      ...[0, 1].flatMap((h) => [...get(sums + 2 * v + h), ...widened(xv, h), ...widened(dv, h), ...op.dmul, ...op.dadd, ...set(sums + 2 * v + h)]),
    ]).flat(),
    ...add(xp, get(xColStep)),
    ...add(dp, get(dyColStep)),
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
    ...get(ch), ...i32const(16 * G), i32.add, i32.tee, ch, ...get(channelEnd), i32.ltS, ...BR_IF_LOOP,
  ];
  const row = [
    ...get(channelBegin), ...set(ch),
    ...LOOP, ...block, END,
    ...add(xRow, get(xRowStep)),
    ...add(dyRow, get(dyRowStep)),
    ...countdown(r),
  ];
  const image = [
    ...get(xImg), ...set(xRow), ...get(dyImg), ...set(dyRow), ...get(rows), ...set(r),
    ...LOOP, ...row, END,
    ...add(xImg, get(xImage)),
    ...add(dyImg, get(dyImage)),
    ...countdown(b),
  ];
  const body = [...get(x), ...set(xImg), ...get(dy), ...set(dyImg), ...get(images), ...set(b), ...LOOP, ...image, END];
  return functionCode([[11, I32], [2 * G + 2, V128]], body);
}

function assemble(): Uint8Array {
  const signature = [0x60, ...vec(Array.from({length: 14}, () => [I32])), ...vec([])];
  return moduleBytes(
    section(1, vec([signature])),
    section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    section(3, vec(BLOCKS.map(() => [0]))),
    section(7, vec(BLOCKS.map((G, i) => [...name(blockName(G)), 0x00, i]))),
    section(10, vec(BLOCKS.map((G) => tapCode(G)))),
  );
}

type Tap = (x: number, dy: number, acc: number, images: number, rows: number, cols: number, xImage: number, dyImage: number, xRowStep: number, dyRowStep: number, xColStep: number, dyColStep: number, channelBegin: number, channelEnd: number) => void;
type Exports = Record<ReturnType<typeof blockName>, Tap>;

/** Whether the SIMD kernel applies: channel multiplier 1 and channels a multiple of 4. */
export function fitsDepthwiseSimd(g: ConvGeometry): boolean {
  return g.outC === g.inC && g.inC % 4 === 0;
}

/** dW [kH, kW, C, 1] for x and dy in the wasm heap (fitsDepthwiseSimd(g) must hold). */
export function depthwiseFilterGradSimd(backend: WasmBackend, x: TensorInfo, dy: TensorInfo, g: ConvGeometry, filterShape: number[]): TensorInfo {
  const {batch, inH, inW, inC: C, outH, outW, kH, kW, strideH, strideW, padTop, padLeft} = g;
  const kernels = heapKernels<Exports>(backend, 'depthwise-simd', assemble);
  const taps = kH * kW;
  const scratch = backend.makeOutput([2 * taps * C + 2], 'float32');
  const out = backend.makeOutput(filterShape, 'float32');
  try {
    const base = Math.ceil(heapAddress(backend, scratch) / 8) * 8;
    const sums = new Float64Array(heapF32(backend, scratch).buffer, base, taps * C);
    sums.fill(0);
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
        const args = [xFirst, dyFirst, base + 8 * (kh * kW + kw) * C, batch, rows, cols, inH * inW * pixel, outH * outW * pixel, strideH * inW * pixel, outW * pixel, strideW * pixel, pixel] as const;
        if (full > 0) kernels.tap4(...args, 0, full);
        if (full < pixel) kernels.tap1(...args, full, pixel);
      }
    }
    heapF32(backend, out).set(new Float64Array(heapF32(backend, scratch).buffer, base, taps * C)); // rounds float64 → float32
  } finally {
    disposeInfos(backend, [scratch]);
  }
  return out;
}
