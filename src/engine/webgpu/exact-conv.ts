/**
 * `--precision exact` for the webgpu backend: every convolution kernel a training step runs
 * (forward, input gradient, filter gradient; dense and depthwise) as a direct WGSL loop whose sum
 * is a double-float (src/engine/webgpu/double-float.ts), so each output is the float32 nearest the
 * exact sum, as the cpu backend's float64 sums give. One invocation per output element, no tiling:
 * this is the mode that proves a port against the PyTorch fixtures, not the fast one.
 */
import {
  backend_util,
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  DepthwiseConv2dNative,
  DepthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropInput,
} from '@tensorflow/tfjs-core';
import type {Conv2DAttrs, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo} from '@tensorflow/tfjs-core';

import {convGeometry, type ConvGeometry, type KernelArgs, requireFloat32} from '../wasm/kernel-utils.js';
import {DOUBLE_FLOAT_WGSL, ZERO_UNIFORM} from './double-float.js';
import {flatProgram, type WebGpuBackend, type WebGpuProgram} from './program.js';

/** Which sum an output element is: y from (x, W), dx from (dy, W), dW from (x, dy). */
type Pass = 'forward' | 'inputGrad' | 'filterGrad';

const INPUTS: Record<Pass, [string, string]> = {forward: ['x', 'W'], inputGrad: ['dy', 'W'], filterGrad: ['x', 'dy']};

/** Index helpers shared by every pass: NHWC x / dy and the [kH, kW, inC, outC / mul] filter. */
const GEOMETRY_WGSL = `
  fn xAt(b : i32, iy : i32, ix : i32, c : i32) -> i32 {
    return ((b * uniforms.inDims.y + iy) * uniforms.inDims.z + ix) * uniforms.inDims.w + c;
  }
  fn dyAt(b : i32, oy : i32, ox : i32, d : i32) -> i32 {
    return ((b * uniforms.outDims.y + oy) * uniforms.outDims.z + ox) * uniforms.outDims.w + d;
  }
  // Filter element for tap (kh, kw), input channel c, output channel d: dense [kH, kW, inC, outC];
  // depthwise [kH, kW, inC, mul], where output channel d = c·mul + q sits at (kh·kW + kw)·outC + d.
  fn wAt(kh : i32, kw : i32, c : i32, d : i32) -> i32 {
    let tap = kh * uniforms.filterDims.y + kw;
    return select((tap * uniforms.inDims.w + c) * uniforms.outDims.w + d, tap * uniforms.outDims.w + d, DEPTHWISE);
  }
  // (n, h, w, c) of a flat index into a row-major tensor of shape dims (dims.x is not needed).
  fn coordsOf(index : i32, dims : vec4<i32>) -> vec4<i32> {
    let w = (index / dims.w) % dims.z;
    let rest = index / (dims.w * dims.z);
    return vec4<i32>(rest / dims.y, rest % dims.y, w, index % dims.w);
  }
  // The input row (or column) that output row o reads through tap k, or -1 in the padding.
  fn inputFor(o : i32, k : i32, stride : i32, pad : i32, inSize : i32) -> i32 {
    let i = o * stride - pad + k;
    return select(i, -1, i < 0 || i >= inSize);
  }
  // The output row (or column) that tap k reads input row i from, or -1 when none does.
  fn outputFor(i : i32, k : i32, stride : i32, pad : i32, outSize : i32) -> i32 {
    let n = i + pad - k;
    if (n < 0 || n % stride != 0 || n / stride >= outSize) { return -1; }
    return n / stride;
  }
`;

function passBody(pass: Pass): string {
  switch (pass) {
    case 'forward':
      // y[b, oy, ox, d] = Σ_{kh, kw, c ∈ d's group} x[b, iy, ix, c] · W[kh, kw, c, d]
      return `
        let at = coordsOf(index, uniforms.outDims);
        let b = at.x; let oy = at.y; let ox = at.z; let d = at.w;
        let cFirst = select(0, d / uniforms.padMul.z, DEPTHWISE);
        let cEnd = select(uniforms.inDims.w, cFirst + 1, DEPTHWISE);
        for (var kh = 0; kh < uniforms.filterDims.x; kh++) {
          let iy = inputFor(oy, kh, uniforms.filterDims.z, uniforms.padMul.x, uniforms.inDims.y);
          if (iy < 0) { continue; }
          for (var kw = 0; kw < uniforms.filterDims.y; kw++) {
            let ix = inputFor(ox, kw, uniforms.filterDims.w, uniforms.padMul.y, uniforms.inDims.z);
            if (ix < 0) { continue; }
            for (var c = cFirst; c < cEnd; c++) {
              acc = dfMulAdd(acc, x[xAt(b, iy, ix, c)], W[wAt(kh, kw, c, d)]);
            }
          }
        }`;
    case 'inputGrad':
      // dx[b, iy, ix, c] = Σ_{kh, kw, d fed by c} dy[b, oy, ox, d] · W[kh, kw, c, d] over the taps that read (iy, ix)
      return `
        let at = coordsOf(index, uniforms.inDims);
        let b = at.x; let iy = at.y; let ix = at.z; let c = at.w;
        let dFirst = select(0, c * uniforms.padMul.z, DEPTHWISE);
        let dEnd = select(uniforms.outDims.w, dFirst + uniforms.padMul.z, DEPTHWISE);
        for (var kh = 0; kh < uniforms.filterDims.x; kh++) {
          let oy = outputFor(iy, kh, uniforms.filterDims.z, uniforms.padMul.x, uniforms.outDims.y);
          if (oy < 0) { continue; }
          for (var kw = 0; kw < uniforms.filterDims.y; kw++) {
            let ox = outputFor(ix, kw, uniforms.filterDims.w, uniforms.padMul.y, uniforms.outDims.z);
            if (ox < 0) { continue; }
            for (var d = dFirst; d < dEnd; d++) {
              acc = dfMulAdd(acc, dy[dyAt(b, oy, ox, d)], W[wAt(kh, kw, c, d)]);
            }
          }
        }`;
    case 'filterGrad':
      // dW[kh, kw, c, d] = Σ_{b, oy, ox} x[b, iy, ix, c] · dy[b, oy, ox, d]
      return `
        let perTap = select(uniforms.outDims.w, uniforms.padMul.z, DEPTHWISE);
        let at = coordsOf(index, vec4<i32>(uniforms.filterDims.x, uniforms.filterDims.y, uniforms.inDims.w, perTap));
        let kh = at.x; let kw = at.y; let c = at.z; let q = at.w;
        let d = select(q, c * uniforms.padMul.z + q, DEPTHWISE);
        for (var b = 0; b < uniforms.inDims.x; b++) {
          for (var oy = 0; oy < uniforms.outDims.y; oy++) {
            let iy = inputFor(oy, kh, uniforms.filterDims.z, uniforms.padMul.x, uniforms.inDims.y);
            if (iy < 0) { continue; }
            for (var ox = 0; ox < uniforms.outDims.z; ox++) {
              let ix = inputFor(ox, kw, uniforms.filterDims.w, uniforms.padMul.y, uniforms.inDims.z);
              if (ix < 0) { continue; }
              acc = dfMulAdd(acc, x[xAt(b, iy, ix, c)], dy[dyAt(b, oy, ox, d)]);
            }
          }
        }`;
  }
}

function exactConvProgram(pass: Pass, depthwise: boolean, outputShape: number[]): WebGpuProgram {
  return flatProgram({
    variableNames: INPUTS[pass],
    outputShape,
    shaderKey: `dtrainExactConv_${pass}_${depthwise}`,
    uniforms: 'inDims : vec4<i32>, outDims : vec4<i32>, filterDims : vec4<i32>, padMul : vec4<i32>, zero : u32,',
    getUserCode: () => `
      const DEPTHWISE = ${depthwise};
      ${DOUBLE_FLOAT_WGSL}
      ${GEOMETRY_WGSL}
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        var acc = vec2<f32>(0.0, 0.0);
        ${passBody(pass)}
        setOutputAtIndex(index, acc.x + acc.y);
      }`,
  });
}

function geometryUniforms(g: ConvGeometry): Array<{type: string; data: number[]}> {
  return [
    {type: 'int32', data: [g.batch, g.inH, g.inW, g.inC]},
    {type: 'int32', data: [g.batch, g.outH, g.outW, g.outC]},
    {type: 'int32', data: [g.kH, g.kW, g.strideH, g.strideW]},
    {type: 'int32', data: [g.padTop, g.padLeft, g.outC / g.inC, 0]},
    ZERO_UNIFORM,
  ];
}

type Shape4 = [number, number, number, number];

/** The conv geometry of a kernel call from its inputs and attributes, per kernel. */
function geometryOf(pass: Pass, depthwise: boolean, inputs: TensorInfo[], attrs: NamedAttrMap): ConvGeometry {
  const a = attrs as unknown as {
    strides: number | [number, number];
    pad: Conv2DAttrs['pad'];
    dilations?: number | [number, number];
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    dataFormat?: 'NHWC' | 'NCHW';
    inputShape?: Shape4;
    filterShape?: Shape4;
  };
  const [first, second] = inputs;
  const inShape = pass === 'inputGrad' ? a.inputShape! : (first.shape as Shape4);
  const filterShape = pass === 'filterGrad' ? a.filterShape! : (second.shape as Shape4);
  const info = backend_util.computeConv2DInfo(inShape, filterShape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, depthwise,
    backend_util.convertConv2DDataFormat(a.dataFormat ?? 'NHWC'));
  return convGeometry(info);
}

function outputShapeOf(pass: Pass, depthwise: boolean, g: ConvGeometry): number[] {
  if (pass === 'forward') return [g.batch, g.outH, g.outW, g.outC];
  if (pass === 'inputGrad') return [g.batch, g.inH, g.inW, g.inC];
  return [g.kH, g.kW, g.inC, depthwise ? g.outC / g.inC : g.outC];
}

function exactConvConfig(kernelName: string, pass: Pass, depthwise: boolean): KernelConfig {
  const kernelFunc = ({inputs, backend, attrs}: KernelArgs) => {
    const ordered = INPUTS[pass].map((name) => inputs[name === 'W' ? 'filter' : name]);
    ordered.forEach((info, i) => requireFloat32(info, INPUTS[pass][i]));
    const g = geometryOf(pass, depthwise, ordered, attrs!);
    const program = exactConvProgram(pass, depthwise, outputShapeOf(pass, depthwise, g));
    return (backend as WebGpuBackend).runWebGPUProgram(program, ordered, 'float32', geometryUniforms(g));
  };
  return {kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as unknown as KernelFunc};
}

/** The six convolution kernels of a training step, summing exactly, for the webgpu backend. */
export function exactConvConfigs(): KernelConfig[] {
  return [
    exactConvConfig(Conv2D, 'forward', false),
    exactConvConfig(DepthwiseConv2dNative, 'forward', true),
    exactConvConfig(Conv2DBackpropInput, 'inputGrad', false),
    exactConvConfig(DepthwiseConv2dNativeBackpropInput, 'inputGrad', true),
    exactConvConfig(Conv2DBackpropFilter, 'filterGrad', false),
    exactConvConfig(DepthwiseConv2dNativeBackpropFilter, 'filterGrad', true),
  ];
}
