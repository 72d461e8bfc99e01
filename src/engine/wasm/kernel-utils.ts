/**
 * Shared plumbing for dtrain's tfjs-backend-wasm kernels: heap access, calling wasm's own kernels,
 * the conv index math, and a float64-summed matrix product on top of wasm's XNNPACK BatchMatMul.
 */
import {backend_util, getKernel, registerKernel, unregisterKernel} from '@tensorflow/tfjs-core';
import type {DataId, DataType, KernelBackend, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo} from '@tensorflow/tfjs-core';

import {webAssembly} from '../../util/wasm-assembler.js';

/** The part of tfjs-backend-wasm's BackendWasm these kernels use (its typings pull in emscripten's). */
export interface WasmBackend extends KernelBackend {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): backend_util.TypedArray;
  disposeData(dataId: DataId, force?: boolean): boolean;
}

/** Kernel arguments as the engine passes them (`backend` is typed `{}` by tfjs). */
export interface KernelArgs<A = NamedAttrMap> {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: A;
}

export function requireFloat32(info: TensorInfo, what: string): void {
  if (info.dtype !== 'float32') throw new Error(`dtrain wasm kernel: ${what} must be float32, got ${info.dtype}`);
}

/**
 * A Float32Array view of a tensor in the wasm heap. Any allocation on the heap may grow (and so
 * detach) it: take views after the last makeOutput / wasm kernel call, never keep them across one.
 */
export function heapF32(backend: WasmBackend, info: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** A tensor's byte address in the wasm heap (stable across heap growth, unlike a view). */
export function heapAddress(backend: WasmBackend, info: TensorInfo): number {
  return heapF32(backend, info).byteOffset;
}

const compiledModules = new Map<string, object>();
/** One instance per module and tfjs-wasm memory (a backend re-created after tf.removeBackend has a new one). */
const heapInstances = new WeakMap<object, Map<string, unknown>>();

/**
 * The exports of a WebAssembly module (assembled once by `assemble`) that imports tfjs-wasm's own
 * memory as env.memory, so its functions work on tensors in place, at their heap addresses.
 */
export function heapKernels<E>(backend: WasmBackend, key: string, assemble: () => Uint8Array): E {
  const memory = (backend as unknown as {wasm: {asm: {memory: object}}}).wasm.asm.memory;
  let perMemory = heapInstances.get(memory);
  if (perMemory === undefined) heapInstances.set(memory, (perMemory = new Map()));
  let exports = perMemory.get(key) as E | undefined;
  if (exports === undefined) {
    let compiled = compiledModules.get(key);
    if (compiled === undefined) compiledModules.set(key, (compiled = new webAssembly.Module(assemble())));
    exports = new webAssembly.Instance(compiled, {env: {memory}}).exports as E;
    perMemory.set(key, exports);
  }
  return exports;
}

/** `count` float64 values in the wasm heap, 8-byte aligned inside a float32 scratch `tensor` (dispose it after use); `base` is their byte address. */
export interface Float64Scratch {
  tensor: TensorInfo;
  base: number;
  count: number;
}

/** A Float64Scratch of `count` zeros. */
export function float64Scratch(backend: WasmBackend, count: number): Float64Scratch {
  const tensor = backend.makeOutput([2 * count + 2], 'float32');
  const base = Math.ceil(heapAddress(backend, tensor) / 8) * 8;
  const scratch = {tensor, base, count};
  float64Values(backend, scratch).fill(0);
  return scratch;
}

/** A view of a Float64Scratch's values; take it after the last allocation (the heap may grow). */
export function float64Values(backend: WasmBackend, scratch: Float64Scratch): Float64Array {
  return new Float64Array(heapF32(backend, scratch.tensor).buffer, scratch.base, scratch.count);
}

/** Frees intermediate tensors made inside a kernel (the engine does not know about them). */
export function disposeInfos(backend: WasmBackend, infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/** Runs another kernel registered for wasm (BatchMatMul, ...) on the same backend, synchronously. */
export function runWasmKernel(name: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap, backend: WasmBackend): TensorInfo {
  const kernel = getKernel(name, 'wasm');
  if (kernel === undefined) throw new Error(`the wasm backend has no ${name} kernel`);
  const out = kernel.kernelFunc({inputs, backend, attrs});
  if (Array.isArray(out)) throw new Error(`wasm ${name} returned ${out.length} outputs, expected one`);
  return out;
}

/** NHWC convolution geometry, from backend_util.computeConv2DInfo, in the names the loops use. */
export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

export function convGeometry(info: backend_util.Conv2DInfo): ConvGeometry {
  if (info.dataFormat !== 'channelsLast') throw new Error('dtrain wasm kernels support NHWC (channelsLast) only');
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) throw new Error('dtrain wasm kernels support dilation 1 only');
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/** True for a 1×1, stride-1, unpadded conv: then the conv is a plain [N·H·W, Cin]×[Cin, Cout] product. */
export function isPointwise(g: ConvGeometry): boolean {
  return g.kH === 1 && g.kW === 1 && g.strideH === 1 && g.strideW === 1 && g.padTop === 0 && g.padLeft === 0 && g.outH === g.inH && g.outW === g.inW;
}

/**
 * For each filter tap k along one axis, the output positions y whose input position
 * y·stride − pad + k lies inside [0, inSize): lo[k] ≤ y < hi[k] (lo = hi when none does).
 * Hoisting this out of the pixel loops removes every bounds test from them.
 */
export function tapRanges(filterSize: number, stride: number, pad: number, inSize: number, outSize: number): {lo: Int32Array; hi: Int32Array} {
  const lo = new Int32Array(filterSize);
  const hi = new Int32Array(filterSize);
  for (let k = 0; k < filterSize; k++) {
    const first = Math.max(0, Math.ceil((pad - k) / stride));
    const last = Math.min(outSize - 1, Math.floor((inSize - 1 + pad - k) / stride));
    lo[k] = first;
    hi[k] = Math.max(first, last + 1);
  }
  return {lo, hi};
}

/**
 * The inverse view: for each input position x along one axis, the (tap k, output y) pairs with
 * y·stride − pad + k = x, flattened as [k0, y0, k1, y1, ...] in `pairs[start[x] .. start[x+1])`.
 */
export function inputTaps(filterSize: number, stride: number, pad: number, inSize: number, outSize: number): {start: Int32Array; pairs: Int32Array} {
  const {lo, hi} = tapRanges(filterSize, stride, pad, inSize, outSize);
  const count = new Int32Array(inSize + 1);
  for (let k = 0; k < filterSize; k++) for (let y = lo[k]; y < hi[k]; y++) count[y * stride - pad + k + 1]++;
  for (let x = 0; x < inSize; x++) count[x + 1] += count[x];
  const pairs = new Int32Array(2 * count[inSize]);
  const next = count.slice(0, inSize);
  for (let k = 0; k < filterSize; k++) {
    for (let y = lo[k]; y < hi[k]; y++) {
      const at = 2 * next[y * stride - pad + k]++;
      pairs[at] = k;
      pairs[at + 1] = y;
    }
  }
  return {start: count, pairs};
}

/** The part of tfjs-backend-cpu's MathBackendCPU these kernels use. */
interface CpuBackend {
  data: {get(dataId: DataId): {values: backend_util.BackendValues} | undefined};
  makeTensorInfo(shape: number[], dtype: DataType, values: backend_util.BackendValues): TensorInfo;
}

/**
 * Runs a float32 kernel body on the cpu or the wasm backend: `body` reads its inputs and fills its
 * outputs as plain Float32Arrays, wherever the backend keeps them (JS arrays, or the wasm heap).
 */
export function runF32Kernel(backendName: 'cpu' | 'wasm', backend: unknown, inputs: TensorInfo[], outShapes: number[][],
  body: (ins: Float32Array[], outs: Float32Array[]) => void): TensorInfo[] {
  inputs.forEach((info, i) => requireFloat32(info, `input ${i}`));
  if (backendName === 'wasm') {
    const wasm = backend as WasmBackend;
    const outs = outShapes.map((shape) => wasm.makeOutput(shape, 'float32'));
    // Views only after every allocation: an allocation may grow the heap and detach them.
    body(inputs.map((info) => heapF32(wasm, info)), outs.map((info) => heapF32(wasm, info)));
    return outs;
  }
  const cpu = backend as CpuBackend;
  const outs = outShapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
  body(inputs.map((info) => cpu.data.get(info.dataId)!.values as Float32Array), outs);
  return outs.map((values, i) => cpu.makeTensorInfo(outShapes[i], 'float32', values));
}

/**
 * Rows per block in the per-channel passes over [rows, C] data: each channel's sum (or factors)
 * stays in a register while its column of the block is walked, instead of a load and a store of a
 * Float64Array accumulator per element (measured 2× faster for C ≤ 48). 64 rows, fewer for wide
 * channels so that a block stays ≤ 16 KiB per array (C = 1024 at 64 rows was slower than no blocks).
 */
export function blockRows(channels: number): number {
  return Math.max(4, Math.min(64, Math.floor(4096 / channels)));
}

/** One config per backend for a kernel whose body runF32Kernel runs on either. */
export function cpuAndWasmConfigs(kernelName: string, kernelFunc: (backendName: 'cpu' | 'wasm', args: KernelArgs) => TensorInfo[]): KernelConfig[] {
  return (['wasm', 'cpu'] as const).map((backendName) => ({
    kernelName,
    backendName,
    kernelFunc: ((args: KernelArgs) => kernelFunc(backendName, args)) as unknown as KernelFunc,
  }));
}

/**
 * Terms of a reduction that one XNNPACK call sums in float32 before the partial sums are added in
 * float64. Measured on 1×1 dW (relative L2 against an exact sum; float32 rounding alone: 2.5e-8):
 * 64 → 1.2e-7, 256 → 2.2e-7, 1024 → 4.6e-7, one call over N·H·W = 8192 → 1.3e-6, 32768 → 2.7e-6;
 * the extra calls cost within the timing noise (XNNPACK packs B, ∝ its size, either way).
 */
export const GEMM_CHUNK = 256;

/** Fills one chunk of the product's operands: A[:, k0:k0+kc] as [rows, kc], B[k0:k0+kc, :] as [kc, cols]. */
export interface GemmOperands {
  /** A itself, when it already lies in the heap as [rows, inner]: used as is (no copy) when one chunk covers the reduction. */
  wholeA?: TensorInfo;
  fillA(dst: Float32Array, k0: number, kc: number): void;
  fillB(dst: Float32Array, k0: number, kc: number): void;
}

/**
 * out = A·B ([rows, inner] × [inner, cols]) through wasm's BatchMatMul (XNNPACK, fast only without
 * transposes and with batch 1), the inner dimension cut into chunks of GEMM_CHUNK whose float32
 * partial products are summed in float64. Returns a float32 tensor of `outShape`.
 */
export function chunkedMatMul(backend: WasmBackend, outShape: number[], rows: number, inner: number, cols: number, operands: GemmOperands): TensorInfo {
  const chunks = Math.max(1, Math.ceil(inner / GEMM_CHUNK));
  let acc = new Float64Array(0);
  for (let c = 0; c < chunks; c++) {
    const k0 = c * GEMM_CHUNK;
    const kc = Math.min(GEMM_CHUNK, inner - k0);
    // B is XNNPACK's "weights": wasm caches the packed operator by B's tensor id, so B must be a
    // fresh tensor per chunk, never a rewritten one.
    const shared = chunks === 1 ? operands.wholeA : undefined;
    const a = shared === undefined ? backend.makeOutput([1, rows, kc], 'float32') : {...shared, shape: [1, rows, kc]};
    const b = backend.makeOutput([1, kc, cols], 'float32');
    if (shared === undefined) operands.fillA(heapF32(backend, a), k0, kc);
    operands.fillB(heapF32(backend, b), k0, kc);
    const part = runWasmKernel('BatchMatMul', {a, b}, {transposeA: false, transposeB: false}, backend);
    disposeInfos(backend, shared === undefined ? [a, b] : [b]);
    if (chunks === 1) {
      part.shape = outShape;
      return part;
    }
    const p = heapF32(backend, part);
    if (c === 0) acc = Float64Array.from(p);
    else for (let i = 0; i < p.length; i++) acc[i] += p[i];
    disposeInfos(backend, [part]);
  }
  const out = backend.makeOutput(outShape, 'float32');
  heapF32(backend, out).set(acc); // rounds float64 → float32
  return out;
}

const fastPathName = (kernelName: string) => `dtrain${kernelName}`;

/**
 * wasm's own kernel `wasmOwn` with `fast` tried first: a faster path for some of its cases, which
 * returns undefined to leave the rest to it. The wrapper keeps wasm's setupFunc (which binds the C
 * function, and which the engine calls only for the registered config) and is named
 * dtrain<KernelName>, so that hasFastPath sees it and registering twice never wraps it again.
 */
export function withFastPath<A>(wasmOwn: KernelConfig, fast: (args: KernelArgs<A>) => TensorInfo | undefined): KernelConfig {
  const kernelFunc = (args: KernelArgs<A>) => fast(args) ?? wasmOwn.kernelFunc(args as unknown as Parameters<KernelFunc>[0]);
  Object.defineProperty(kernelFunc, 'name', {value: fastPathName(wasmOwn.kernelName)});
  return {...wasmOwn, kernelFunc: kernelFunc as unknown as KernelFunc};
}

/** Whether config is already a withFastPath wrapper. */
export function hasFastPath(config: KernelConfig): boolean {
  return config.kernelFunc.name === fastPathName(config.kernelName);
}

/** Registers config, replacing a kernel the backend already has under that name. */
export function replaceKernel(config: KernelConfig): void {
  if (getKernel(config.kernelName, config.backendName) !== undefined) unregisterKernel(config.kernelName, config.backendName);
  registerKernel(config);
}
