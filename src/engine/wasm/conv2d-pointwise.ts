/**
 * A faster forward Conv2D for tfjs-backend-wasm's 1×1 stride-1 convs (all of ShuffleNetV2's but
 * the first): y = x·W, x [N·H·W, Cin] and W [Cin, Cout] as they lie, through dtrain's SIMD product
 * (gemm-simd.ts), which ran 32–37 GFLOP/s on the size-0.5 layers against XNNPACK's 23–29 there
 * (XNNPACK packs W on every call, as the weights change every step). Up to GEMM_CHUNK (256) input
 * channels, one float32 sum each, in order, as XNNPACK's; wider convs (conv5 at size 1.5: 25.6
 * against 29.4 GFLOP/s, its float64 chunk sums cost more than they save), every other conv, and
 * Cout not a multiple of 4 go to wasm's own kernel.
 */
import {backend_util} from '@tensorflow/tfjs-core';
import type {Conv2DAttrs, TensorInfo} from '@tensorflow/tfjs-core';

import {matMulNN} from './gemm-simd.js';
import {convGeometry, GEMM_CHUNK, isPointwise} from './kernel-utils.js';
import type {KernelArgs, WasmBackend} from './kernel-utils.js';

/** y for a pointwise conv with Cin ≤ GEMM_CHUNK and Cout a multiple of 4, else undefined: wasm's own Conv2D's fast path. */
export function pointwiseConv2D(args: KernelArgs<Conv2DAttrs>): TensorInfo | undefined {
  const backend = args.backend as WasmBackend;
  const {x, filter} = args.inputs as {x: TensorInfo; filter: TensorInfo};
  const {strides, pad, dataFormat, dilations, dimRoundingMode} = args.attrs!;
  if (x.dtype !== 'float32' || filter.dtype !== 'float32' || dataFormat !== 'NHWC') return undefined;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filter.shape as [number, number, number, number], strides, dilations, pad, dimRoundingMode, false, 'channelsLast');
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  const g = convGeometry(info);
  // Beyond GEMM_CHUNK input channels XNNPACK stays: the float64 chunk sums cost more than they save.
  if (!isPointwise(g) || g.outC % 4 !== 0 || g.inC > GEMM_CHUNK) return undefined;
  return matMulNN(backend, x, filter, g.batch * g.inH * g.inW, g.inC, g.outC, info.outShape);
}
