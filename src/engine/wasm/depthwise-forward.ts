/**
 * A faster forward DepthwiseConv2dNative for tfjs-backend-wasm (3×3, multiplier 1, channels a
 * multiple of 4, dilation 1: all of ShuffleNetV2's): WebAssembly SIMD on the heap (depthwise-simd.ts),
 * 4 channels a vector, each output's taps summed in order in float32 as XNNPACK's kernel does. Its
 * per-call cost made XNNPACK's depthwise conv run at 2–3 GFLOP/s on the model's layers. It is also
 * what the input gradient runs (depthwise-backprop-input.ts). Every other case goes to wasm's own.
 */
import {backend_util} from '@tensorflow/tfjs-core';
import type {DepthwiseConv2dNativeAttrs, TensorInfo} from '@tensorflow/tfjs-core';

import {depthwiseConvSimd, fitsDepthwiseConvSimd} from './depthwise-simd.js';
import {convGeometry} from './kernel-utils.js';
import type {KernelArgs, WasmBackend} from './kernel-utils.js';

/** y for the cases depthwise-simd covers, else undefined: wasm's own DepthwiseConv2dNative's fast path. */
export function simdDepthwiseConv(args: KernelArgs<DepthwiseConv2dNativeAttrs>): TensorInfo | undefined {
  const backend = args.backend as WasmBackend;
  const {x, filter} = args.inputs as {x: TensorInfo; filter: TensorInfo};
  const {strides, pad, dilations, dimRoundingMode} = args.attrs!;
  if (x.dtype !== 'float32' || filter.dtype !== 'float32') return undefined;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filter.shape as [number, number, number, number], strides, dilations ?? 1, pad, dimRoundingMode, true);
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1 || info.dataFormat !== 'channelsLast') return undefined;
  const g = convGeometry(info);
  return fitsDepthwiseConvSimd(g) ? depthwiseConvSimd(backend, x, filter, g, info.outShape) : undefined;
}
