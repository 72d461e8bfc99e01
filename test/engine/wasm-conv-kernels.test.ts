/**
 * dtrain's wasm training kernels against tfjs's cpu backend (float64 accumulation): gradients of
 * conv2d and depthwiseConv2d on awkward shapes, computed on both backends from the same data.
 */
import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {registerWasmTrainingKernels} from '../../src/engine/wasm/register.js';
import {normalArray, relL2} from './compare.js';

// wasm's own (XNNPACK) kernels, before dtrain wraps them: dtrain's forward convs must give their bits.
const xnnpack = {Conv2D: tf.getKernel('Conv2D', 'wasm')!, DepthwiseConv2dNative: tf.getKernel('DepthwiseConv2dNative', 'wasm')!};
registerWasmTrainingKernels();

/** y of wasm's own kernel `name` (set up by the wrapper that shares its setupFunc). */
function xnnpackForward(name: keyof typeof xnnpack, x: tf.Tensor, filter: tf.Tensor, strides: number, pad: Pad): tf.Tensor {
  const info = xnnpack[name].kernelFunc({inputs: {x, filter}, backend: tf.backend(), attrs: {strides, pad, dilations: 1, dataFormat: 'NHWC'}}) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(info);
}

type Pad = 'valid' | 'same' | number | [[0, 0], [number, number], [number, number], [0, 0]];
interface ConvCase {
  name: string;
  x: [number, number, number, number];
  /** [kH, kW, Cin, Cout] for conv2d, [kH, kW, C, multiplier] for depthwise. */
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

type ConvFn = (x: tf.Tensor4D, w: tf.Tensor4D, c: ConvCase) => tf.Tensor4D;
const conv2d: ConvFn = (x, w, c) => tf.conv2d(x, w, c.strides, c.pad);
const depthwise: ConvFn = (x, w, c) => tf.depthwiseConv2d(x, w, c.strides, c.pad);

/** [dx, dw] of Σ dy·conv(x, w) on `backend`, as plain arrays (same inputs on every backend). */
async function convGrads(backend: string, conv: ConvFn, c: ConvCase, seed: number): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(normalArray(tf.util.sizeFromShape(c.x), seed), c.x);
    const w = tf.tensor4d(normalArray(tf.util.sizeFromShape(c.filter), seed + 1), c.filter);
    const y = conv(x, w, c);
    const dy = tf.tensor(normalArray(y.size, seed + 2), y.shape);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => conv(a as tf.Tensor4D, b as tf.Tensor4D, c))([x, w], dy);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}

/** Compares wasm with cpu on each case, reporting each relative L2 error. */
async function checkAgainstCpu(conv: ConvFn, cases: ConvCase[], tolerance: {dx: number; dw: number}, report: (line: string) => void): Promise<void> {
  for (const [i, c] of cases.entries()) {
    const [cpuDx, cpuDw] = await convGrads('cpu', conv, c, 100 * i);
    const [wasmDx, wasmDw] = await convGrads('wasm', conv, c, 100 * i);
    const errDx = relL2(wasmDx!, cpuDx!);
    const errDw = relL2(wasmDw!, cpuDw!);
    report(`${c.name}: relL2 dx ${errDx.toExponential(2)}, dw ${errDw.toExponential(2)}`);
    assert.ok(errDx <= tolerance.dx, `${c.name}: dx relative L2 ${errDx} > ${tolerance.dx}`);
    assert.ok(errDw <= tolerance.dw, `${c.name}: dw relative L2 ${errDw} > ${tolerance.dw}`);
  }
}

const convCases: ConvCase[] = [
  {name: '1x1 valid, batch 3, 7x5 (pointwise, one chunk)', x: [3, 7, 5, 5], filter: [1, 1, 5, 6], strides: 1, pad: 'valid'},
  {name: '1x1 pad 0, batch 3, 9x11, 7->260 (pointwise, chunked both ways)', x: [3, 9, 11, 7], filter: [1, 1, 7, 260], strides: 1, pad: 0},
  {name: '1x1 same, batch 4, 16x16, 48->48 (model-like)', x: [4, 16, 16, 48], filter: [1, 1, 48, 48], strides: 1, pad: 'same'},
  {name: '1x1 valid, batch 2, 19x17, 13->20 (SIMD dW: edge rows and columns, 3 pixel blocks)', x: [2, 19, 17, 13], filter: [1, 1, 13, 20], strides: 1, pad: 'valid'},
  {name: '1x1 valid, batch 3, 9x5, 20->13 (SIMD dX, one chunk: edge rows and columns)', x: [3, 9, 5, 20], filter: [1, 1, 20, 13], strides: 1, pad: 'valid'},
  {name: '1x1 valid, batch 2, 9x7, 12->300 (SIMD dX, 2 chunks: edge rows and columns)', x: [2, 9, 7, 12], filter: [1, 1, 12, 300], strides: 1, pad: 'valid'},
  {name: '3x3 pad 1, batch 5, 32x32, 3->24 (first conv, 2 patch blocks)', x: [5, 32, 32, 3], filter: [3, 3, 3, 24], strides: 1, pad: 1},
  {name: '3x3 pad 1, batch 1, 7x5, 3->4 (first conv)', x: [1, 7, 5, 3], filter: [3, 3, 3, 4], strides: 1, pad: 1},
  {name: '3x3 pad 1, batch 2, 32x32, 3->24 (first conv, chunked)', x: [2, 32, 32, 3], filter: [3, 3, 3, 24], strides: 1, pad: 1},
  {name: '3x3 same stride 2, batch 3, 7x5', x: [3, 7, 5, 4], filter: [3, 3, 4, 6], strides: 2, pad: 'same'},
  {name: '3x3 valid stride 2, batch 1, 9x7', x: [1, 9, 7, 2], filter: [3, 3, 2, 3], strides: 2, pad: 'valid'},
  {name: '2x3 explicit pad, strides [2,1], batch 3, 7x5', x: [3, 7, 5, 3], filter: [2, 3, 3, 5], strides: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]]},
  {name: '4x4 same (uneven pad), batch 1, 6x7', x: [1, 6, 7, 2], filter: [4, 4, 2, 3], strides: 1, pad: 'same'},
  {name: '1x1 stride 2 (not pointwise), batch 3, 7x5', x: [3, 7, 5, 4], filter: [1, 1, 4, 5], strides: 2, pad: 'valid'},
];

const depthwiseCases: ConvCase[] = [
  {name: '3x3 pad 1 stride 1, batch 3, 7x5', x: [3, 7, 5, 5], filter: [3, 3, 5, 1], strides: 1, pad: 1},
  {name: '3x3 pad 1 stride 2, batch 1, 7x5', x: [1, 7, 5, 4], filter: [3, 3, 4, 1], strides: 2, pad: 1},
  {name: '3x3 pad 1 stride 2, batch 2, 16x16, 24 channels (model-like)', x: [2, 16, 16, 24], filter: [3, 3, 24, 1], strides: 2, pad: 1},
  {name: '3x3 same stride 2 (uneven pad), batch 3, 8x6', x: [3, 8, 6, 3], filter: [3, 3, 3, 1], strides: 2, pad: 'same'},
  {name: '3x3 valid stride 2, batch 1, 9x7', x: [1, 9, 7, 2], filter: [3, 3, 2, 1], strides: 2, pad: 'valid'},
  {name: '3x3 pad 1 stride 1, batch 2, 9x6, 36 channels (SIMD dW: 2 blocks of 16 and a tail)', x: [2, 9, 6, 36], filter: [3, 3, 36, 1], strides: 1, pad: 1},
  {name: '3x3 valid stride 2, batch 3, 9x8, 8 channels (SIMD dW)', x: [3, 9, 8, 8], filter: [3, 3, 8, 1], strides: 2, pad: 'valid'},
  {name: '2x2 explicit pad beyond the filter, 4 channels (SIMD dW: taps outside every row), batch 2, 5x4', x: [2, 5, 4, 4], filter: [2, 2, 4, 1], strides: 1, pad: [[0, 0], [2, 0], [0, 2], [0, 0]]},
  {name: '2x2 explicit pad beyond the filter (JS path), batch 3, 7x5', x: [3, 7, 5, 3], filter: [2, 2, 3, 1], strides: 1, pad: [[0, 0], [2, 0], [0, 2], [0, 0]]},
  {name: '3x3 same stride 2, multiplier 2, batch 3, 8x6', x: [3, 8, 6, 3], filter: [3, 3, 3, 2], strides: 2, pad: 'same'},
  {name: '3x3 valid stride 1, multiplier 2, batch 1, 7x5', x: [1, 7, 5, 4], filter: [3, 3, 4, 2], strides: 1, pad: 'valid'},
  {name: '2x3 explicit pad, strides [1,2], multiplier 3, batch 3, 7x5', x: [3, 7, 5, 2], filter: [2, 3, 2, 3], strides: [1, 2], pad: [[0, 0], [1, 0], [2, 1], [0, 0]]},
];

test('the wasm backend has every kernel conv training needs, and 1x1 Conv2DBackpropInput is dtrain\'s', () => {
  for (const name of ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'Conv2DBackpropInput']) {
    assert.ok(tf.getKernel(name, 'wasm') !== undefined, `${name} is not registered for wasm`);
  }
  assert.equal(tf.getKernel('Conv2DBackpropInput', 'wasm').kernelFunc.name, 'dtrainConv2DBackpropInput');
  registerWasmTrainingKernels(); // idempotent: a second call must not wrap the wrapper
  assert.equal(tf.getKernel('Conv2DBackpropInput', 'wasm').kernelFunc.name, 'dtrainConv2DBackpropInput');
});

test('conv2d gradients on wasm match the cpu backend', async (t) => {
  // dW sums float32 partial products of ≤256 terms in float64 (SIMD outer products, or XNNPACK
  // where Cout is not a multiple of 4): ~2e-7 measured.
  await checkAgainstCpu(conv2d, convCases, {dx: 1e-6, dw: 1e-6}, (line) => t.diagnostic(line));
});

test('1x1 forward Conv2D on wasm gives XNNPACK\'s bits (edge tiles; beyond 256 input channels, XNNPACK itself)', async () => {
  await tf.setBackend('wasm');
  assert.equal(tf.getKernel('Conv2D', 'wasm').kernelFunc.name, 'dtrainConv2D');
  for (const [n, h, w, cin, cout] of [[3, 5, 7, 13, 20], [2, 16, 16, 48, 48], [1, 4, 4, 300, 8], [2, 3, 3, 8, 6]]) {
    const x = tf.tensor4d(normalArray(n * h * w * cin, cin), [n, h, w, cin]);
    const f = tf.tensor4d(normalArray(cin * cout, cout), [1, 1, cin, cout]);
    const y = tf.conv2d(x, f, 1, 'valid');
    const want = xnnpackForward('Conv2D', x, f, 1, 'valid');
    assert.deepEqual(await y.data(), await want.data(), `[${n}, ${h}, ${w}, ${cin}] → ${cout}`);
    tf.dispose([x, f, y, want]);
  }
});

test('forward depthwise conv on wasm gives XNNPACK\'s bits (3×3, every border band, strides 1 and 2)', async () => {
  await tf.setBackend('wasm');
  assert.equal(tf.getKernel('DepthwiseConv2dNative', 'wasm').kernelFunc.name, 'dtrainDepthwiseConv2dNative');
  const cases: Array<[number[], number, Pad]> = [
    [[3, 16, 16, 24], 1, 1], [[3, 16, 16, 24], 2, 1], [[3, 7, 5, 8], 2, 'same'], [[2, 9, 8, 12], 1, 'valid'],
    [[2, 4, 4, 36], 1, 1], [[2, 5, 4, 4], 1, [[0, 0], [2, 0], [0, 2], [0, 0]]], [[2, 6, 5, 5], 1, 1],
  ];
  for (const [shape, strides, pad] of cases) {
    const x = tf.tensor4d(normalArray(tf.util.sizeFromShape(shape), shape[3]), shape as [number, number, number, number]);
    const f = tf.tensor4d(normalArray(9 * shape[3], 7), [3, 3, shape[3], 1]);
    const y = tf.depthwiseConv2d(x, f, strides, pad);
    const want = xnnpackForward('DepthwiseConv2dNative', x, f, strides, pad);
    assert.deepEqual(await y.data(), await want.data(), `[${shape}] stride ${strides} pad ${JSON.stringify(pad)}`);
    tf.dispose([x, f, y, want]);
  }
});

test('depthwiseConv2d gradients on wasm match the cpu backend', async (t) => {
  // dW: float64 like cpu's (JS, or SIMD float64 lanes), only the order of the sums differs. dX with multiplier 1: XNNPACK's
  // float32 sums of kH·kW terms (~5e-8 measured); other multipliers: float64 again.
  await checkAgainstCpu(depthwise, depthwiseCases, {dx: 2e-7, dw: 1e-7}, (line) => t.diagnostic(line));
});

test('wasm training kernels leak neither tensors nor wasm heap buffers', async () => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as {numDataIds(): number};
  const run = () => tf.tidy(() => {
    const x = tf.randomNormal([2, 9, 7, 8]) as tf.Tensor4D;
    const w1 = tf.randomNormal([1, 1, 8, 300]) as tf.Tensor4D;
    const wd = tf.randomNormal([3, 3, 300, 1]) as tf.Tensor4D;
    const w3 = tf.randomNormal([3, 3, 300, 4]) as tf.Tensor4D;
    const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
      tf.sum(tf.conv2d(tf.depthwiseConv2d(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'valid'), c as tf.Tensor4D, 2, 1), d as tf.Tensor4D, 1, 1));
    return tf.grads(f)([x, w1, wd, w3]);
  });
  tf.dispose(run());
  const tensors = tf.memory().numTensors;
  const dataIds = backend.numDataIds();
  for (let i = 0; i < 3; i++) tf.dispose(run());
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(backend.numDataIds(), dataIds);
});

test('wasm Identity (tensor clones, saved gradient inputs) shares the data instead of copying it, and frees it with the last owner', async () => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as {numDataIds(): number};
  const x = tf.tensor1d([1, 2, 3, 4]);
  const ids = backend.numDataIds();
  const y = tf.clone(x);
  assert.equal(backend.numDataIds(), ids, 'no new buffer for the clone');
  x.dispose();
  assert.deepEqual(Array.from(await y.data()), [1, 2, 3, 4], 'the clone outlives the original');
  y.dispose();
  assert.equal(backend.numDataIds(), ids - 1, 'the buffer is freed with its last owner');
});

test('wasm Cast to the same dtype (every ReLU gradient) shares the data; other casts still convert', async () => {
  await tf.setBackend('wasm');
  const backend = tf.backend() as unknown as {numDataIds(): number};
  const x = tf.tensor1d([1.5, -2.25, 3, 0]);
  const ids = backend.numDataIds();
  const same = tf.cast(x, 'float32');
  assert.equal(backend.numDataIds(), ids, 'no new buffer for a float32 → float32 cast');
  const ints = tf.cast(x, 'int32');
  assert.equal(backend.numDataIds(), ids + 1);
  assert.equal(ints.dtype, 'int32');
  assert.deepEqual(Array.from(await ints.data()), [1, -2, 3, 0]);
  x.dispose();
  assert.deepEqual(Array.from(await same.data()), [1.5, -2.25, 3, 0], 'the cast outlives its input');
  tf.dispose([same, ints]);
  assert.equal(backend.numDataIds(), ids - 1);
});
