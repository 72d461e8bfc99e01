/**
 * The parts of tfjs-backend-webgpu that dtrain's own WGSL kernels use, typed here: the package's
 * declarations pull DOM-like WebGPU globals into the type space (see src/engine/webgpu.ts).
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

/** A compute program as tfjs-webgpu runs it: tfjs declares the buffers, uniforms and index helpers. */
export interface WebGpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  size: boolean;
  uniforms: string;
  workgroupSize: [number, number, number];
  dispatchLayout: {x: number[]};
  dispatch: [number, number, number];
  getUserCode(): string;
}

const WORKGROUP = 64;

/**
 * A program with one invocation per output element (tfjs calls `main(index)`, 64 to a workgroup;
 * it spreads the dispatch over y and z when x exceeds the device's limit).
 */
export function flatProgram(p: Pick<WebGpuProgram, 'variableNames' | 'outputShape' | 'shaderKey' | 'uniforms' | 'getUserCode'>): WebGpuProgram {
  const size = p.outputShape.reduce((a, b) => a * b, 1);
  return {...p, size: true, workgroupSize: [WORKGROUP, 1, 1], dispatchLayout: {x: p.outputShape.map((_, i) => i)}, dispatch: [Math.ceil(size / WORKGROUP), 1, 1]};
}

export interface WebGpuBackend {
  runWebGPUProgram(program: WebGpuProgram, inputs: TensorInfo[], outputDtype: 'float32', uniforms: Array<{type: string; data: number[]}>): TensorInfo;
}
