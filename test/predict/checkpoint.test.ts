/** readCheckpoint: size from metadata or --size, name prefixes, clear errors; the loaded model is the fixture's. */
import assert from 'node:assert/strict';
import {promises as fs} from 'node:fs';
import path from 'node:path';
import {after, before, test} from 'node:test';
import {fileURLToPath} from 'node:url';

import * as tf from '@tensorflow/tfjs-core';

import {UserError} from '../../src/cli/errors.js';
import {initBackend} from '../../src/engine/backend.js';
import {modelFromCheckpoint, readCheckpoint} from '../../src/model/checkpoint.js';
import {readSafetensors, type SafeData, serializeSafetensors} from '../../src/model/safetensors.js';
import {tempDir} from '../data/helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/shufflenetv2_0.5_reference.safetensors', import.meta.url));

let dir: string;
/** The fixture's state dict re-saved as a bare PyTorch export: "module." names (DataParallel), no metadata. */
let bare: string;

before(async () => {
  dir = await tempDir('dtrain-checkpoint-');
  const {tensors} = await readSafetensors(FIXTURE);
  const model = new Map<string, {shape: number[]; data: SafeData}>();
  for (const [name, t] of tensors) if (name.startsWith('model.')) model.set(`module.${name.slice('model.'.length)}`, t);
  bare = path.join(dir, 'bare.safetensors');
  await fs.writeFile(bare, serializeSafetensors(model));
});

after(() => fs.rm(dir, {recursive: true, force: true}));

async function rejectsWith(promise: Promise<unknown>, exitCode: number, message: RegExp, suggestion?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof UserError, String(error));
    assert.equal(error.exitCode, exitCode);
    assert.match(error.message, message);
    if (suggestion) assert.match(error.suggestion ?? '', suggestion);
    return true;
  });
}

test('the PyTorch fixture: "model." prefix found, size from its metadata; eval logits are the reference ones', async () => {
  const checkpoint = await readCheckpoint(FIXTURE);
  assert.equal(checkpoint.prefix, 'model.');
  assert.equal(checkpoint.size, 0.5);
  assert.equal(checkpoint.epoch, undefined);
  await initBackend('wasm');
  const model = modelFromCheckpoint(checkpoint);
  const input = checkpoint.tensors.get('ref.input_nhwc')!;
  const expected = checkpoint.tensors.get('ref.logits_eval')!.data as Float32Array;
  const x = tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number]);
  const {logits} = model.forward(x, false);
  const got = (await logits.data()) as Float32Array;
  const maxError = Math.max(...Array.from(got, (v, i) => Math.abs(v - expected[i])));
  assert.ok(maxError < 1e-3, `max |logit error| ${maxError}`);
  tf.dispose([x, logits]);
  model.dispose();
});

test('--size that contradicts the metadata is a usage error saying both sizes', async () => {
  await rejectsWith(readCheckpoint(FIXTURE, 1), 2, /size 0\.5 checkpoint \(its metadata\), not size 1/, /--size 0\.5/);
});

test('an export without metadata needs --size; the error names the size its shapes fit', async () => {
  await rejectsWith(readCheckpoint(bare), 2, /does not record its model size/, /--size 0\.5/);
  const ok = await readCheckpoint(bare, 0.5);
  assert.equal(ok.prefix, 'module.');
  assert.equal(ok.size, 0.5);
  await rejectsWith(readCheckpoint(bare, 1.5), 2, /does not hold a ShuffleNetV2 size 1\.5: its tensor shapes are those of size 0\.5/);
});

test('not a model, not safetensors, no file: one clear error each', async () => {
  const other = path.join(dir, 'other.safetensors');
  await fs.writeFile(other, serializeSafetensors(new Map([['weight', {shape: [2], data: Float32Array.of(1, 2)}]])));
  await rejectsWith(readCheckpoint(other), 5, /holds no ShuffleNetV2 weights/);
  const text = path.join(dir, 'notes.txt');
  await fs.writeFile(text, 'hello, not a checkpoint');
  await rejectsWith(readCheckpoint(text), 5, /not a valid safetensors file/);
  await rejectsWith(readCheckpoint(path.join(dir, 'absent.safetensors')), 5, /cannot read/);
});
