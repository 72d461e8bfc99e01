/**
 * DepthwiseConv2dNativeBackpropInput for tfjs-backend-wasm, which has none:
 * dX[pixel, c] = Σ over the (tap, output pixel) pairs that read this input pixel and q < mul of
 * dY[output pixel, c·mul + q] · W[tap, c, q].
 *
 * With multiplier 1 (the model's) that is a stride-1 depthwise conv of dY (zero-stuffed when the
 * stride is 2) with the 180°-turned filter, which wasm's XNNPACK DepthwiseConv2dNative runs 5–15×
 * faster than the JS loop below; its float32 sums have only kH·kW terms, so they stay within a few ulps
 * of a float64 sum. Other multipliers (and paddings beyond the filter) use a float64 JS gather.
 */
import {backend_util, DepthwiseConv2dNativeBackpropInput} from '@tensorflow/tfjs-core';
import type {DepthwiseConv2dNativeBackpropInputAttrs, KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {convGeometry, disposeInfos, heapF32, inputTaps, requireFloat32, runWasmKernel} from './kernel-utils.js';
import type {ConvGeometry, KernelArgs, WasmBackend} from './kernel-utils.js';

/** Writes dX ([batch, inH, inW, Cin]) into dx: gathered per input pixel, so each is written once. */
export function depthwiseInputGrad(dx: Float32Array, dy: Float32Array, w: Float32Array, g: ConvGeometry): void {
  const {batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft} = g;
  const mul = outC / inC;
  const rows = inputTaps(kH, strideH, padTop, inH, outH);
  const cols = inputTaps(kW, strideW, padLeft, inW, outW);
  const acc = new Float64Array(inC);
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let iy = 0; iy < inH; iy++) {
      for (let ix = 0; ix < inW; ix++) {
        acc.fill(0);
        for (let r = rows.start[iy]; r < rows.start[iy + 1]; r++) {
          const kh = rows.pairs[2 * r];
          const dyRow = (b * outH + rows.pairs[2 * r + 1]) * outW;
          for (let s = cols.start[ix]; s < cols.start[ix + 1]; s++) {
            const wo = (kh * kW + cols.pairs[2 * s]) * outC;
            const d = (dyRow + cols.pairs[2 * s + 1]) * outC;
            if (mul === 1) {
              for (let c = 0; c < inC; c++) acc[c] += dy[d + c] * w[wo + c];
            } else {
              for (let c = 0, k = 0; c < inC; c++) {
                for (let q = 0; q < mul; q++, k++) acc[c] += dy[d + k] * w[wo + k];
              }
            }
          }
        }
        for (let c = 0; c < inC; c++, o++) dx[o] = acc[c];
      }
    }
  }
}

/**
 * dX as wasm's depthwise conv of dY, for multiplier 1: along each axis, dY zero-stuffed to
 * (out − 1)·stride + 1 samples, padded by k − 1 − pad before and whatever makes the size `in`
 * after, correlated with the turned filter. Undefined where that padding would be negative.
 */
function viaWasmDepthwise(backend: WasmBackend, dy: TensorInfo, filter: TensorInfo, g: ConvGeometry): TensorInfo | undefined {
  const {batch, inH, inW, inC, outH, outW, kH, kW, strideH, strideW, padTop, padLeft} = g;
  const upH = (outH - 1) * strideH + 1;
  const upW = (outW - 1) * strideW + 1;
  const pads = [kH - 1 - padTop, inH + padTop - upH, kW - 1 - padLeft, inW + padLeft - upW];
  if (g.outC !== inC || pads.some((p) => p < 0)) return undefined;
  const stuffed = strideH === 1 && strideW === 1 ? undefined : backend.makeOutput([batch, upH, upW, inC], 'float32');
  const turned = backend.makeOutput([kH, kW, inC, 1], 'float32'); // a fresh id: XNNPACK caches filters by id
  const w = heapF32(backend, filter);
  const t = heapF32(backend, turned);
  for (let k = 0, taps = kH * kW; k < taps; k++) t.set(w.subarray(k * inC, (k + 1) * inC), (taps - 1 - k) * inC);
  if (stuffed !== undefined) {
    const up = heapF32(backend, stuffed).fill(0);
    const src = heapF32(backend, dy);
    for (let b = 0, s = 0; b < batch; b++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          const d = ((b * upH + oy * strideH) * upW + ox * strideW) * inC;
          for (let c = 0; c < inC; c++, s++) up[d + c] = src[s];
        }
      }
    }
  }
  const pad = [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]] as backend_util.ExplicitPadding;
  const dx = runWasmKernel('DepthwiseConv2dNative', {x: stuffed ?? dy, filter: turned}, {strides: 1, dilations: 1, pad}, backend);
  disposeInfos(backend, stuffed === undefined ? [turned] : [turned, stuffed]);
  return dx;
}

function depthwiseConv2dNativeBackpropInput(args: KernelArgs<DepthwiseConv2dNativeBackpropInputAttrs>): TensorInfo {
  const backend = args.backend as WasmBackend;
  const {dy, filter} = args.inputs as {dy: TensorInfo; filter: TensorInfo};
  const {strides, dilations, pad, dimRoundingMode, inputShape} = args.attrs!;
  requireFloat32(dy, 'dy');
  requireFloat32(filter, 'filter');
  const info = backend_util.computeConv2DInfo(
    inputShape, filter.shape as [number, number, number, number], strides, dilations, pad, dimRoundingMode, true);
  const g = convGeometry(info);
  const fast = viaWasmDepthwise(backend, dy, filter, g);
  if (fast !== undefined) return fast;
  const out = backend.makeOutput(info.inShape, 'float32');
  depthwiseInputGrad(heapF32(backend, out), heapF32(backend, dy), heapF32(backend, filter), g);
  return out;
}

export const depthwiseConv2dNativeBackpropInputConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropInput as unknown as KernelFunc,
};
