/**
 * A faster Conv2DBackpropInput for tfjs-backend-wasm's 1×1 stride-1 convs: wasm's own kernel is a
 * plain C loop (~10× slower than XNNPACK there), so dX = dY · Wᵀ is a matrix product: dtrain's SIMD
 * one (gemm-simd.ts) where Cin is a multiple of 4, else wasm's BatchMatMul; either sums chunks of
 * the Cout reduction in float64. Every other conv delegates to wasm's kernel.
 */
import {backend_util} from '@tensorflow/tfjs-core';
import type {Conv2DBackpropInputAttrs, TensorInfo} from '@tensorflow/tfjs-core';

import {matMulNN} from './gemm-simd.js';
import {chunkedMatMul, convGeometry, disposeInfos, heapF32, isPointwise} from './kernel-utils.js';
import type {KernelArgs, WasmBackend} from './kernel-utils.js';

/** dX for a pointwise conv, or undefined when the conv is not one (or not float32 NHWC): wasm's own kernel's fast path. */
export function pointwiseBackpropInput(args: KernelArgs<Conv2DBackpropInputAttrs>): TensorInfo | undefined {
  const backend = args.backend as WasmBackend;
  const {dy, filter} = args.inputs as {dy: TensorInfo; filter: TensorInfo};
  const {strides, pad, dataFormat, dimRoundingMode, inputShape} = args.attrs!;
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32' || dataFormat !== 'NHWC') return undefined;
  const info = backend_util.computeConv2DInfo(
    inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  const g = convGeometry(info);
  if (!isPointwise(g)) return undefined;
  const pixels = g.batch * g.inH * g.inW;
  const {inC, outC} = g;
  if (inC % 4 === 0) {
    // Wᵀ [Cout, Cin] as B, the one copy: W is [1, 1, Cin, Cout], so Wᵀ[co][ci] = W[ci·Cout + co].
    const wt = backend.makeOutput([outC, inC], 'float32');
    try {
      const w = heapF32(backend, filter);
      const dst = heapF32(backend, wt);
      for (let ci = 0; ci < inC; ci++) for (let co = 0; co < outC; co++) dst[co * inC + ci] = w[ci * outC + co];
      return matMulNN(backend, dy, wt, pixels, outC, inC, info.inShape);
    } finally {
      disposeInfos(backend, [wt]);
    }
  }
  return chunkedMatMul(backend, info.inShape, pixels, outC, inC, {
    wholeA: dy,
    // dY columns k0..k0+count of every pixel row.
    fillA: (dst, k0, count) => {
      const src = heapF32(backend, dy);
      for (let m = 0, d = 0; m < pixels; m++) {
        const s = m * outC + k0;
        for (let k = 0; k < count; k++, d++) dst[d] = src[s + k];
      }
    },
    // Wᵀ rows k0..k0+count: W is [1, 1, Cin, Cout], so Wᵀ[co][ci] = W[ci·Cout + co].
    fillB: (dst, k0, count) => {
      const w = heapF32(backend, filter);
      for (let k = 0, d = 0; k < count; k++) {
        for (let ci = 0; ci < inC; ci++, d++) dst[d] = w[ci * outC + k0 + k];
      }
    },
  });
}
