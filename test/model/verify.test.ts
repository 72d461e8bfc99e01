import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {mkdtemp, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {test} from 'node:test';
import {promisify} from 'node:util';

import * as tf from '@tensorflow/tfjs-core';

import {initBackend} from '../../src/engine/backend.js';
import {applyPrecision} from '../../src/engine/precision.js';
import {readSafetensors, serializeSafetensors} from '../../src/model/safetensors.js';
import {verifyReference} from '../../src/model/verify.js';

const FIXTURE = new URL('../fixtures/shufflenetv2_0.5_reference.safetensors', import.meta.url).pathname;
const BIN = new URL('../../bin/run.js', import.meta.url).pathname;
const run = promisify(execFile);

for (const backend of ['wasm', 'cpu'] as const) {
  test(`verify on ${backend}: forward, gradients, running stats and SGD steps match PyTorch`, async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const report = await verifyReference(await readSafetensors(FIXTURE), 'fixture');
    console.log(`${backend}: worst forward ${report.worst.forward.toExponential(2)}, gradient ${report.worst.gradient.toExponential(2)}, update ${report.worst.update.toExponential(2)}`);
    assert.equal(tf.memory().numTensors, before, 'verify frees every tensor');
    const of = (prefix: string) => report.quantities.filter((q) => q.quantity.startsWith(prefix));
    assert.equal(of('grad.').length, 9);
    for (const q of [...of('logits'), ...of('loss'), ...of('after_forward.')]) assert.ok(q.error < 1e-5, `${q.quantity} ${q.error}`);
    for (const q of [...of('grad.'), ...of('after_step.')]) assert.ok(q.ok, `${q.quantity} ${q.error}`);
    // Float64 accumulation in dtrain's kernels: gradients as close as PyTorch's own float32 ones (~1e-5).
    for (const q of of('grad.')) assert.ok(q.error < 5e-5, `${q.quantity} ${q.error}`);
    if (backend === 'cpu') {
      assert.ok(report.ok, `every quantity within tolerance on cpu: ${report.quantities.filter((q) => !q.ok).map((q) => q.quantity)}`);
    } else {
      // The second step amplifies float32 noise of the first ~2000× on this fixture (PyTorch float32
      // itself: 9.3e-3; see docs/fidelity.md); a wrong momentum would be order 1.
      for (const q of of('after_step2.')) assert.ok(q.error < 5e-2, `${q.quantity} ${q.error}`);
    }
  });
}

test('wasm with --precision exact (float64 sums in forward convolutions) passes every quantity; back to fast afterwards', async () => {
  await initBackend('wasm');
  applyPrecision('wasm', 'exact');
  try {
    const report = await verifyReference(await readSafetensors(FIXTURE), 'fixture');
    console.log(`wasm exact: worst gradient ${report.worst.gradient.toExponential(2)}, update ${report.worst.update.toExponential(2)}`);
    assert.ok(report.ok, `every quantity within tolerance: ${report.quantities.filter((q) => !q.ok).map((q) => `${q.quantity} ${q.error}`)}`);
  } finally {
    applyPrecision('wasm', 'fast');
  }
  assert.equal(tf.getKernel('Conv2D', 'wasm')?.kernelFunc.name, 'dtrainConv2D', 'the fast Conv2D (dtrain\'s 1×1 SIMD product over XNNPACK) is back');
  assert.equal(tf.getKernel('DepthwiseConv2dNative', 'wasm')?.kernelFunc.name, 'dtrainDepthwiseConv2dNative', 'the fast depthwise conv is back');
  assert.throws(() => applyPrecision('tensorflow', 'exact'), /--precision exact needs the wasm, webgpu or cpu backend/);
});

test('a port with a wrong layout fails verification with order-1 errors', async () => {
  await initBackend('wasm');
  const file = await readSafetensors(FIXTURE);
  const w = file.tensors.get('model.conv1.weight')!;
  const data = w.data as Float32Array;
  const swapped = new Float32Array(data.length);
  // Transpose kh and kw of every 3×3 kernel: what a HWIO/OIHW mix-up does.
  for (let k = 0; k < data.length / 9; k++) for (let h = 0; h < 3; h++) for (let c = 0; c < 3; c++) swapped[k * 9 + h * 3 + c] = data[k * 9 + c * 3 + h];
  file.tensors.set('model.conv1.weight', {...w, data: swapped});
  const report = await verifyReference(file, 'swapped');
  assert.equal(report.ok, false);
  assert.ok(report.worst.forward > 1e-2, `forward error ${report.worst.forward}`);
});

test('dtrain model verify: JSON report, exit 3 on mismatch, one clear line for a bad file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dtrain-verify-'));
  const file = await readSafetensors(FIXTURE);
  const logits = file.tensors.get('ref.logits_eval')!;
  file.tensors.set('ref.logits_eval', {...logits, data: (logits.data as Float32Array).map((v) => v + 0.5)});
  const tampered = join(dir, 'tampered.safetensors');
  await writeFile(tampered, serializeSafetensors(file.tensors as Map<string, {shape: number[]; data: Float32Array}>, file.metadata));
  const failed = await run('node', [BIN, 'model', 'verify', tampered, '--backend', 'wasm', '--json']).then(
    () => assert.fail('verify should exit non-zero'),
    (error: {code: number; stdout: string}) => error,
  );
  assert.equal(failed.code, 3);
  const json = JSON.parse(failed.stdout) as {ok: boolean; backend: string; errors: Record<string, number>};
  assert.equal(json.ok, false);
  assert.equal(json.backend, 'wasm');
  assert.ok(Math.abs(json.errors.logits_eval - 0.5) < 1e-3);
  const garbage = join(dir, 'garbage.safetensors');
  await writeFile(garbage, 'not a model');
  const bad = await run('node', [BIN, 'model', 'verify', garbage]).then(
    () => assert.fail('should fail'),
    (error: {code: number; stderr: string}) => error,
  );
  assert.equal(bad.code, 5);
  assert.match(bad.stderr, /garbage\.safetensors is not a valid safetensors file/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace without --verbose');
});
