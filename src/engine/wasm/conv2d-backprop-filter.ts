/**
 * Conv2DBackpropFilter for tfjs-backend-wasm, which has none: dW = patches(x)ᵀ · dY, as a sum of
 * outer products in WebAssembly SIMD (gemm-simd.ts): the patch matrix is built in JS a block of
 * output pixels at a time (for a 1×1 stride-1 conv it is x itself, used in place). Where Cout is
 * not a multiple of 4, the transposed patch matrix goes through XNNPACK (wasm's BatchMatMul)
 * instead, chunk by chunk. Either way float32 partial sums over GEMM_CHUNK pixels are added in
 * float64.
 */
import {backend_util, Conv2DBackpropFilter} from '@tensorflow/tfjs-core';
import type {Conv2DBackpropFilterAttrs, KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {sumOuterProducts} from './gemm-simd.js';
import {chunkedMatMul, convGeometry, disposeInfos, GEMM_CHUNK, heapAddress, heapF32, isPointwise, requireFloat32} from './kernel-utils.js';
import type {ConvGeometry, KernelArgs, WasmBackend} from './kernel-utils.js';

/**
 * Writes rows j = 0..count−1 of the patch matrix for output pixels m0..m0+count−1 into dst, laid
 * out [count, kH·kW·Cin]: row j holds x at each tap (kh, kw) and channel ci of pixel m0 + j, in the
 * filter's [kH, kW, Cin] order (0 in the padding), so patchesᵀ·dY is dW as stored. With
 * `transposed` it writes patchesᵀ instead, [kH·kW·Cin, count] (the XNNPACK path's A operand).
 */
function fillPatches(dst: Float32Array, x: Float32Array, g: ConvGeometry, m0: number, count: number, transposed: boolean): void {
  const {inH, inW, inC, outH, outW, kH, kW, strideH, strideW, padTop, padLeft} = g;
  // Consecutive values of one pixel's row lie `step` apart; consecutive pixels `next` apart.
  const step = transposed ? count : 1;
  const next = transposed ? 1 : kH * kW * inC;
  let ox = m0 % outW;
  let oy = Math.floor(m0 / outW) % outH;
  let b = Math.floor(m0 / (outW * outH));
  for (let j = 0; j < count; j++) {
    const iy0 = oy * strideH - padTop;
    const ix0 = ox * strideW - padLeft;
    let d = j * next;
    for (let kh = 0; kh < kH; kh++) {
      const iy = iy0 + kh;
      const rowInside = iy >= 0 && iy < inH;
      for (let kw = 0; kw < kW; kw++) {
        const ix = ix0 + kw;
        if (rowInside && ix >= 0 && ix < inW) {
          const s = ((b * inH + iy) * inW + ix) * inC;
          for (let ci = 0; ci < inC; ci++, d += step) dst[d] = x[s + ci];
        } else {
          for (let ci = 0; ci < inC; ci++, d += step) dst[d] = 0;
        }
      }
    }
    if (++ox === outW) {
      ox = 0;
      if (++oy === outH) {
        oy = 0;
        b++;
      }
    }
  }
}

/** Pixels of the patch matrix built at a time (a multiple of GEMM_CHUNK, so the float64 blocks are the same). */
const PATCH_BLOCK = 16 * GEMM_CHUNK;

/** dW as a sum of outer products (gemm-simd), or undefined where Cout is not a multiple of 4. */
function simdFilterGradient(backend: WasmBackend, x: TensorInfo, dy: TensorInfo, g: ConvGeometry, pixels: number, filterShape: number[]): TensorInfo | undefined {
  const patchSize = g.kH * g.kW * g.inC;
  return sumOuterProducts(backend, patchSize, g.outC, filterShape, (add) => {
    // For a 1×1 stride-1 conv, x is the patch matrix.
    if (isPointwise(g)) return add(heapAddress(backend, x), heapAddress(backend, dy), pixels);
    const block = Math.min(PATCH_BLOCK, pixels);
    const patches = backend.makeOutput([block, patchSize], 'float32');
    try {
      const dst = heapF32(backend, patches);
      const xs = heapF32(backend, x);
      for (let m0 = 0; m0 < pixels; m0 += block) {
        const count = Math.min(block, pixels - m0);
        fillPatches(dst, xs, g, m0, count, false);
        add(heapAddress(backend, patches), heapAddress(backend, dy) + 4 * m0 * g.outC, count);
      }
    } finally {
      disposeInfos(backend, [patches]);
    }
  });
}

function conv2DBackpropFilter(args: KernelArgs<Conv2DBackpropFilterAttrs>): TensorInfo {
  const backend = args.backend as WasmBackend;
  const {x, dy} = args.inputs as {x: TensorInfo; dy: TensorInfo};
  const {strides, pad, dataFormat, dimRoundingMode, filterShape} = args.attrs!;
  requireFloat32(x, 'x');
  requireFloat32(dy, 'dy');
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false,
    backend_util.convertConv2DDataFormat(dataFormat));
  const g = convGeometry(info);
  const pixels = g.batch * g.outH * g.outW;
  const simd = simdFilterGradient(backend, x, dy, g, pixels, info.filterShape);
  if (simd !== undefined) return simd;
  const patchSize = g.kH * g.kW * g.inC;
  return chunkedMatMul(backend, info.filterShape, patchSize, pixels, g.outC, {
    // Where Cout is not a multiple of 4: XNNPACK, with patchesᵀ always copied (x transposed for a
    // pointwise conv); dY chunks are contiguous rows.
    fillA: (dst, m0, count) => fillPatches(dst, heapF32(backend, x), g, m0, count, true),
    fillB: (dst, m0, count) => dst.set(heapF32(backend, dy).subarray(m0 * g.outC, (m0 + count) * g.outC)),
  });
}

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as unknown as KernelFunc,
};
