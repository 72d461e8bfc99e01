/**
 * `--precision exact` for BatchNorm on webgpu: dtrain's DtrainBatchMoments as WGSL with double-float
 * sums (src/engine/webgpu/double-float.ts), two passes like the wasm/cpu kernel's float64 ones, so
 * mean and variance are the float32 nearest their exact values. Without it the fast path's float32
 * reductions land a ReLU input on the wrong side of zero on the size-1.5 seed-108 fixture.
 * One invocation per channel, each walking the N·H·W rows of its column.
 */
import type {KernelConfig, KernelFunc, TensorInfo} from '@tensorflow/tfjs-core';

import {BATCH_MOMENTS} from '../wasm/batch-moments.js';
import {type KernelArgs, requireFloat32} from '../wasm/kernel-utils.js';
import {DOUBLE_FLOAT_WGSL, ZERO_UNIFORM} from './double-float.js';
import {flatProgram, type WebGpuBackend, type WebGpuProgram} from './program.js';

/** Which moment one program computes: the mean, or the biased variance about the exact mean. */
type Moment = 'mean' | 'variance';

function momentProgram(moment: Moment, channels: number): WebGpuProgram {
  return flatProgram({
    variableNames: ['x'],
    outputShape: [channels],
    shaderKey: `dtrainExactMoment_${moment}`,
    uniforms: 'rows : i32, zero : u32,',
    getUserCode: () => `
      ${DOUBLE_FLOAT_WGSL}
      fn main(c : i32) {
        if (c >= uniforms.size) { return; }
        let channels = uniforms.size;
        var sum = vec2<f32>(0.0, 0.0);
        for (var r = 0; r < uniforms.rows; r++) { sum = dfMulAdd(sum, x[r * channels + c], 1.0); }
        // mean = sum / rows as a double-float: q, then the remainder (sum − q·rows) / rows; q can
        // be several ulps off (lavapipe divides approximately), so the pair is renormalised.
        let rows = f32(uniforms.rows);
        let q = sum.x / rows;
        let rest = dfMulAdd(sum, q, -rows);
        let mean = dfMulAdd(vec2<f32>(q, 0.0), (rest.x + rest.y) / rows, 1.0);
        ${moment === 'mean' ? 'setOutputAtIndex(c, mean.x + mean.y);' : `
        var squares = vec2<f32>(0.0, 0.0);
        for (var r = 0; r < uniforms.rows; r++) {
          // x − mean to double-float precision: TwoSum of x − mean.hi, then − mean.lo.
          let v = x[r * channels + c];
          let s = opaque(v - mean.x);
          let bb = opaque(s - v);
          let e = (v - (s - bb)) + (-mean.x - bb) - mean.y;
          squares = dfMulAdd(squares, s, s);
          squares = dfMulAdd(squares, 2.0 * s, e);
          squares = dfMulAdd(squares, e, e);
        }
        setOutputAtIndex(c, (squares.x + squares.y) / rows);`}
      }`,
  });
}

function batchMoments({inputs, backend}: KernelArgs): TensorInfo[] {
  const {x} = inputs;
  requireFloat32(x, 'x');
  if (x.shape.length !== 4) throw new Error(`${BATCH_MOMENTS}: x must be rank 4 (NHWC), got shape [${x.shape}]`);
  const channels = x.shape[3];
  const rows = x.shape[0] * x.shape[1] * x.shape[2];
  const uniforms = [{type: 'int32', data: [rows]}, ZERO_UNIFORM];
  const gpu = backend as WebGpuBackend;
  return (['mean', 'variance'] as const).map((moment) => gpu.runWebGPUProgram(momentProgram(moment, channels), [x], 'float32', uniforms));
}

/** DtrainBatchMoments for webgpu, exact (registered only with --precision exact). */
export const exactBatchMomentsConfig: KernelConfig = {kernelName: BATCH_MOMENTS, backendName: 'webgpu', kernelFunc: batchMoments as unknown as KernelFunc};
