/**
 * DepthwiseConv2dNativeBackpropFilter for tfjs-backend-wasm, which has none:
 * dW[kh, kw, c, q] = Σ over batch and output pixels of x[tap pixel, c] · dY[pixel, c·mul + q],
 * in float64. There is no XNNPACK shape for it (a per-channel correlation summed over the batch).
 * With multiplier 1 and channels a multiple of 4 (the model's), WebAssembly SIMD does it
 * (depthwise-simd.ts); otherwise plain JS, its loops shaped for V8: sums along a row in registers,
 * three taps per dY load, and the few edge columns along the channels.
 */
import {backend_util, DepthwiseConv2dNativeBackpropFilter} from '@tensorflow/tfjs-core';
import type {DepthwiseConv2dNativeBackpropFilterAttrs, KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {depthwiseFilterGradSimd, fitsDepthwiseSimd} from './depthwise-simd.js';
import {convGeometry, heapF32, requireFloat32, tapRanges} from './kernel-utils.js';
import type {ConvGeometry, KernelArgs, WasmBackend} from './kernel-utils.js';

/** Accumulates dW (layout [kH, kW, Cin, mul], i.e. tap·Cout + output channel) in float64. */
export function depthwiseFilterGrad(x: Float32Array, dy: Float32Array, g: ConvGeometry): Float64Array {
  const {batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft} = g;
  const mul = outC / inC;
  const acc = new Float64Array(kH * kW * outC);
  const {lo, hi} = tapRanges(kW, strideW, padLeft, inW, outW);
  // For 3-wide filters (the model's), from..to are the output columns where all three taps are
  // inside the image: there one dY load feeds three sums; the other columns go tap by tap.
  const three = kW === 3;
  const from = three ? Math.max(lo[0], lo[2]) : 0;
  const to = three ? Math.max(from, Math.min(hi[0], hi[2])) : 0;
  const xStep = strideW * inC;
  for (let b = 0; b < batch; b++) {
    for (let oy = 0; oy < outH; oy++) {
      const dyRow = (b * outH + oy) * outW * outC;
      for (let kh = 0; kh < kH; kh++) {
        const iy = oy * strideH - padTop + kh;
        if (iy < 0 || iy >= inH) continue;
        const xRow = (b * inH + iy) * inW * inC - padLeft * inC; // + ix·inC + c, ix = ox·stride + kw
        const aRow = kh * kW * outC;
        if (three) {
          for (let d = 0; d < outC; d++) {
            const xc = xRow + (mul === 1 ? d : Math.floor(d / mul));
            let s0 = 0;
            let s1 = 0;
            let s2 = 0;
            for (let ox = from, xi = xc + from * xStep, di = dyRow + d + from * outC; ox < to; ox++, xi += xStep, di += outC) {
              const gv = dy[di];
              s0 += x[xi] * gv;
              s1 += x[xi + inC] * gv;
              s2 += x[xi + 2 * inC] * gv;
            }
            acc[aRow + d] += s0;
            acc[aRow + outC + d] += s1;
            acc[aRow + 2 * outC + d] += s2;
          }
        }
        // The columns the 3-tap pass left out (all of them without it), a tap and column at a
        // time along the channels: one loop per column instead of two per channel.
        for (let kw = 0; kw < kW; kw++) {
          const a = aRow + kw * outC;
          for (let ox = lo[kw]; ox < hi[kw]; ox++) {
            if (ox >= from && ox < to) continue; // done by the 3-tap pass
            const xp = xRow + (ox * strideW + kw) * inC;
            const dp = dyRow + ox * outC;
            if (mul === 1) {
              for (let c = 0; c < outC; c++) acc[a + c] += x[xp + c] * dy[dp + c];
            } else {
              for (let c = 0, d = 0; c < inC; c++) {
                for (let q = 0; q < mul; q++, d++) acc[a + d] += x[xp + c] * dy[dp + d];
              }
            }
          }
        }
      }
    }
  }
  return acc;
}

function depthwiseConv2dNativeBackpropFilter(args: KernelArgs<DepthwiseConv2dNativeBackpropFilterAttrs>): TensorInfo {
  const backend = args.backend as WasmBackend;
  const {x, dy} = args.inputs as {x: TensorInfo; dy: TensorInfo};
  const {strides, dilations, pad, dimRoundingMode, filterShape} = args.attrs!;
  requireFloat32(x, 'x');
  requireFloat32(dy, 'dy');
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, dilations, pad, dimRoundingMode, true);
  const g = convGeometry(info);
  if (fitsDepthwiseSimd(g)) return depthwiseFilterGradSimd(backend, x, dy, g, info.filterShape);
  const out = backend.makeOutput(info.filterShape, 'float32');
  // Views after the allocation (it may grow the heap).
  const acc = depthwiseFilterGrad(heapF32(backend, x), heapF32(backend, dy), g);
  heapF32(backend, out).set(acc); // rounds float64 → float32
  return out;
}

export const depthwiseConv2dNativeBackpropFilterConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropFilter as unknown as KernelFunc,
};
