/**
 * Conv2DBackpropFilter for tfjs-backend-wasm, which has none: dW = patches(x)ᵀ · dY.
 * The transposed patch matrix is built in JS one chunk of output pixels at a time (for a 1×1
 * stride-1 conv it is just xᵀ) and multiplied by XNNPACK through wasm's BatchMatMul; the chunks'
 * partial sums are added in float64 (see chunkedMatMul).
 */
import {backend_util, Conv2DBackpropFilter} from '@tensorflow/tfjs-core';
import type {Conv2DBackpropFilterAttrs, KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {chunkedMatMul, convGeometry, heapF32, requireFloat32} from './kernel-utils.js';
import type {ConvGeometry, KernelArgs, WasmBackend} from './kernel-utils.js';

/**
 * Writes columns j = 0..count−1 of patchesᵀ for output pixels m0..m0+count−1 into dst, laid out
 * [kH·kW·Cin, count]: row (kh·kW + kw)·Cin + ci holds x at that tap and channel (0 in the padding).
 * Row order matches the filter layout [kH, kW, Cin, Cout], so the product is dW as stored.
 */
function fillPatchesTransposed(dst: Float32Array, x: Float32Array, g: ConvGeometry, m0: number, count: number): void {
  const {inH, inW, inC, outH, outW, kH, kW, strideH, strideW, padTop, padLeft} = g;
  let ox = m0 % outW;
  let oy = Math.floor(m0 / outW) % outH;
  let b = Math.floor(m0 / (outW * outH));
  for (let j = 0; j < count; j++) {
    const iy0 = oy * strideH - padTop;
    const ix0 = ox * strideW - padLeft;
    let d = j;
    for (let kh = 0; kh < kH; kh++) {
      const iy = iy0 + kh;
      const rowInside = iy >= 0 && iy < inH;
      for (let kw = 0; kw < kW; kw++) {
        const ix = ix0 + kw;
        if (rowInside && ix >= 0 && ix < inW) {
          const s = ((b * inH + iy) * inW + ix) * inC;
          for (let ci = 0; ci < inC; ci++, d += count) dst[d] = x[s + ci];
        } else {
          for (let ci = 0; ci < inC; ci++, d += count) dst[d] = 0;
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
  const patchSize = g.kH * g.kW * g.inC;
  return chunkedMatMul(backend, info.filterShape, patchSize, pixels, g.outC, {
    // For a pointwise conv x is already [pixels, Cin] but the product needs it transposed, so it is
    // always copied; dY chunks are contiguous rows.
    fillA: (dst, m0, count) => fillPatchesTransposed(dst, heapF32(backend, x), g, m0, count),
    fillB: (dst, m0, count) => dst.set(heapF32(backend, dy).subarray(m0 * g.outC, (m0 + count) * g.outC)),
  });
}

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as unknown as KernelFunc,
};
