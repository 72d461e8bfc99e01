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

export interface WebGpuBackend {
  runWebGPUProgram(program: WebGpuProgram, inputs: TensorInfo[], outputDtype: 'float32', uniforms: Array<{type: string; data: number[]}>): TensorInfo;
}
