import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {initBackend} from '../../src/engine/backend.js';
import {architecture, countParams, SIZES, stateEntries} from '../../src/model/architecture.js';
import {tfShape, tfToTorch, torchToTf} from '../../src/model/layout.js';
import {parseSafetensors, readSafetensors, serializeSafetensors} from '../../src/model/safetensors.js';
import {channelShuffle, ShuffleNetV2} from '../../src/model/shufflenetv2.js';
import {forwardMacs, modelSummary} from '../../src/model/summary.js';

const FIXTURE = new URL('../fixtures/shufflenetv2_0.5_reference.safetensors', import.meta.url).pathname;

test('parameter totals are the seed model\'s for every size', () => {
  const expected = {0.5: 352_042, 1: 1_263_854, 1.5: 2_488_874, 2: 5_338_026};
  for (const size of SIZES) {
    assert.equal(countParams(architecture(size)), expected[size]);
    assert.equal(modelSummary(size).totalParams, expected[size]);
  }
  assert.equal(Math.round(forwardMacs(0.5) / 1e5) / 10, 10.9);
  assert.equal(Math.round(forwardMacs(1.5) / 1e5) / 10, 94.3);
});

test('state_dict names, order and shapes equal the PyTorch fixture', async () => {
  const file = await readSafetensors(FIXTURE);
  const torchKeys = [...file.tensors.keys()].filter((k) => k.startsWith('model.')).map((k) => k.slice(6));
  const entries = stateEntries(architecture(0.5));
  assert.deepEqual(entries.map((e) => e.name), torchKeys);
  for (const e of entries) assert.deepEqual(e.torchShape, file.tensors.get(`model.${e.name}`)!.shape, e.name);
});

test('layouts: conv OIHW→HWIO, depthwise [C,1,3,3]→[3,3,C,1], linear [out,in]→[in,out], and back', () => {
  const conv = Float32Array.from({length: 2 * 3 * 3 * 3}, (_, i) => i);
  const hwio = torchToTf('conv', [2, 3, 3, 3], conv);
  assert.deepEqual(tfShape('conv', [2, 3, 3, 3]), [3, 3, 3, 2]);
  // torch[o=1][i=2][h=0][w=1] → tf[h=0][w=1][i=2][o=1]
  assert.equal(hwio[((0 * 3 + 1) * 3 + 2) * 2 + 1], conv[((1 * 3 + 2) * 3 + 0) * 3 + 1]);
  assert.deepEqual(tfToTorch('conv', [2, 3, 3, 3], hwio), conv);
  const dw = Float32Array.from({length: 4 * 9}, (_, i) => i);
  const dwTf = torchToTf('depthwise', [4, 1, 3, 3], dw);
  assert.equal(dwTf[(2 * 3 + 1) * 4 + 3], dw[3 * 9 + 2 * 3 + 1]); // torch[c=3][0][h=2][w=1]
  assert.deepEqual(tfToTorch('depthwise', [4, 1, 3, 3], dwTf), dw);
  const lin = Float32Array.from({length: 6}, (_, i) => i);
  assert.deepEqual(Array.from(torchToTf('linear_weight', [2, 3], lin)), [0, 3, 1, 4, 2, 5]);
});

test('safetensors: round trip with metadata and I64; truncated and malformed files are refused', () => {
  const tensors = new Map([
    ['a', {shape: [2, 2], data: Float32Array.of(1, 2, 3, 4)}],
    ['n', {shape: [], data: BigInt64Array.of(7n)}],
  ]);
  const bytes = serializeSafetensors(tensors, {size: '0.5'});
  assert.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0);
  const parsed = parseSafetensors(bytes);
  assert.deepEqual(Array.from(parsed.tensors.get('a')!.data as Float32Array), [1, 2, 3, 4]);
  assert.equal((parsed.tensors.get('n')!.data as BigInt64Array)[0], 7n);
  assert.equal(parsed.tensors.get('n')!.dtype, 'I64');
  assert.equal(parsed.metadata.size, '0.5');
  assert.throws(() => parseSafetensors(bytes.subarray(0, bytes.length - 4), 'cut.safetensors'), /cut\.safetensors.*truncated/);
  assert.throws(() => parseSafetensors(Buffer.from('hello world!'), 'text'), /not a valid safetensors/);
});

test('a model loaded from PyTorch weights writes back the same state_dict (names, layouts, num_batches_tracked)', async () => {
  await initBackend('cpu');
  const file = await readSafetensors(FIXTURE);
  const model = ShuffleNetV2.fromState(0.5, file.tensors, 'model.');
  const state = await model.stateDict();
  for (const [name, t] of state) {
    const ref = file.tensors.get(`model.${name}`)!;
    assert.deepEqual(t.shape, ref.shape, name);
    assert.deepEqual(Array.from(t.data as ArrayLike<number | bigint>), Array.from(ref.data as ArrayLike<number | bigint>), name);
  }
  model.dispose();
  assert.throws(() => ShuffleNetV2.fromState(1, file.tensors, 'model.'), /shape .* expected .* for size 1/);
});

test('channel shuffle is PyTorch\'s view(N,2,C/2,H,W).permute(0,2,1,3,4)', async () => {
  await initBackend('cpu');
  // NHWC with one pixel: channels [0..5] → groups [0,1,2] and [3,4,5] interleaved.
  const x = tf.tensor4d([0, 1, 2, 3, 4, 5], [1, 1, 1, 6]);
  assert.deepEqual(Array.from(await channelShuffle(x).data()), [0, 3, 1, 4, 2, 5]);
  x.dispose();
});
