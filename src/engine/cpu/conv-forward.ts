/**
 * Conv2D and DepthwiseConv2dNative accumulating in float64: always for the pure-JS cpu backend, and
 * for wasm with `--precision exact`. tfjs's own
 * cpu kernels sum straight into the float32 output; on the reference fixture that rounding is
 * enough to flip a ReLU whose input is 1e-6 from zero and move early-layer gradients by 5e-3.
 * With float64 sums the cpu backend is a precise reference (see docs/fidelity.md).
 */
import {backend_util, Conv2D, DepthwiseConv2dNative} from '@tensorflow/tfjs-core';
import type {Conv2DAttrs, DepthwiseConv2dNativeAttrs, KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {convGeometry, type ConvGeometry, type KernelArgs, runF32Kernel} from '../wasm/kernel-utils.js';

/**
 * y[b, oy, ox, d] = Σ_{kh, kw, c} x[b, iy, ix, c] · w[kh, kw, c, ·] where the filter row for input
 * channel c holds `perInput` output channels starting at `outOffset(c)`: all of them (dense conv,
 * outOffset 0) or c·mul … c·mul+mul−1 (depthwise). Sums per output pixel in a Float64Array.
 */
function convForward(x: Float32Array, w: Float32Array, y: Float32Array, g: ConvGeometry, depthwise: boolean): void {
  const {batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft} = g;
  const perInput = depthwise ? outC / inC : outC;
  const tapStride = depthwise ? outC : inC * outC;
  const acc = new Float64Array(outC);
  for (let b = 0; b < batch; b++) {
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        acc.fill(0);
        for (let kh = 0; kh < kH; kh++) {
          const iy = oy * strideH - padTop + kh;
          if (iy < 0 || iy >= inH) continue;
          for (let kw = 0; kw < kW; kw++) {
            const ix = ox * strideW - padLeft + kw;
            if (ix < 0 || ix >= inW) continue;
            const xBase = ((b * inH + iy) * inW + ix) * inC;
            const wTap = (kh * kW + kw) * tapStride;
            for (let c = 0; c < inC; c++) {
              const xv = x[xBase + c];
              if (xv === 0) continue; // post-ReLU activations are often exactly zero
              const wRow = wTap + c * perInput;
              const out0 = depthwise ? c * perInput : 0;
              for (let q = 0; q < perInput; q++) acc[out0 + q] += xv * w[wRow + q];
            }
          }
        }
        y.set(acc, ((b * outH + oy) * outW + ox) * outC);
      }
    }
  }
}

function makeConfig(kernelName: string, depthwise: boolean, backendName: 'cpu' | 'wasm'): KernelConfig {
  const kernelFunc = ({inputs, backend, attrs}: KernelArgs) => {
    const {x, filter} = inputs as {x: TensorInfo; filter: TensorInfo};
    const {strides, pad, dataFormat, dilations, dimRoundingMode} = attrs as unknown as Conv2DAttrs & DepthwiseConv2dNativeAttrs;
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      strides,
      dilations ?? 1,
      pad,
      dimRoundingMode,
      depthwise,
      backend_util.convertConv2DDataFormat(dataFormat ?? 'NHWC'),
    );
    const g = convGeometry(info);
    return runF32Kernel(backendName, backend, [x, filter], [info.outShape], ([xv, wv], [yv]) => convForward(xv, wv, yv, g, depthwise))[0];
  };
  return {kernelName, backendName, kernelFunc: kernelFunc as unknown as KernelFunc};
}

/** Conv2D and DepthwiseConv2dNative summing in float64, for the cpu backend or (with --precision exact) wasm. */
export function float64ConvConfigs(backendName: 'cpu' | 'wasm'): KernelConfig[] {
  return [makeConfig(Conv2D, false, backendName), makeConfig(DepthwiseConv2dNative, true, backendName)];
}
