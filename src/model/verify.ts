import * as tf from '@tensorflow/tfjs-core';

import {ExitCode, UserError} from '../cli/errors.js';
import {parseModelSize, type StateEntry} from './architecture.js';
import {disposeGradients, lossAndGradients} from './gradients.js';
import {tfToTorch} from './layout.js';
import type {SafetensorsFile, SafeTensor} from './safetensors.js';
import {ShuffleNetV2} from './shufflenetv2.js';
import {SEED_SGD, SGD} from '../optim/sgd.js';

/** Measures and tolerances of shared/reference/README.md. */
export const TOLERANCES = {forward: 1e-4, gradient: 1e-2, update: 1e-2} as const;

export interface QuantityError {
  quantity: string;
  measure: 'max_abs' | 'rel_l2' | 'update_rel_l2';
  error: number;
  tolerance: number;
  ok: boolean;
}

export interface VerifyReport {
  ok: boolean;
  size: number;
  quantities: QuantityError[];
  /** quantity → error, for machines. */
  errors: Record<string, number>;
  worst: {forward: number; gradient: number; update: number};
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** ‖a − b‖ / ‖b‖, or ‖(a − base) − (b − base)‖ / ‖b − base‖ with a base (update errors). */
function relL2(a: ArrayLike<number>, b: ArrayLike<number>, base?: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const ref = base ? b[i] - base[i] : b[i];
    const got = base ? a[i] - base[i] : a[i];
    num += (got - ref) ** 2;
    den += ref ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/**
 * Recompute every quantity a reference fixture holds (see shared/reference/README.md) on the
 * current backend and measure the error of each.
 */
export async function verifyReference(file: SafetensorsFile, source: string): Promise<VerifyReport> {
  const need = (key: string): SafeTensor => {
    const t = file.tensors.get(key);
    if (!t) throw new UserError(`${source} has no tensor ${key}: not a dtrain/PyTorch reference fixture`, {exitCode: ExitCode.data, suggestion: 'make one with shared/reference/make_reference.py'});
    return t;
  };
  const sizeText = file.metadata.size;
  if (sizeText === undefined) throw new UserError(`${source} has no "size" in its __metadata__`, {exitCode: ExitCode.data});
  const size = parseModelSize(sizeText);
  const model = ShuffleNetV2.fromState(size, file.tensors, 'model.');
  const quantities: QuantityError[] = [];
  const record = (quantity: string, measure: QuantityError['measure'], error: number) => {
    const tolerance = measure === 'max_abs' ? TOLERANCES.forward : measure === 'rel_l2' ? TOLERANCES.gradient : TOLERANCES.update;
    quantities.push({quantity, measure, error, tolerance, ok: error <= tolerance});
  };
  const entryOf = new Map<string, StateEntry>(model.entries.map((e) => [e.name, e]));
  const torchData = async (name: string, t: tf.Tensor) => {
    const entry = entryOf.get(name)!;
    return tfToTorch(entry.kind, entry.torchShape, (await t.data()) as Float32Array);
  };
  const picks = [...file.tensors.keys()].filter((k) => k.startsWith('ref.grad.')).map((k) => k.slice('ref.grad.'.length));

  const input = need('ref.input_nhwc');
  const x = tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number]);
  const labels = tf.tensor1d(Array.from(need('ref.labels').data as BigInt64Array, Number), 'int32');
  const optimizer = new SGD(SEED_SGD);
  const initial = new Map<string, Float32Array>();
  for (const p of picks) initial.set(p, need(`model.${p}`).data as Float32Array);
  try {
    const evalLogits = model.forward(x, false).logits;
    record('logits_eval', 'max_abs', maxAbs((await evalLogits.data()) as Float32Array, need('ref.logits_eval').data as Float32Array));
    evalLogits.dispose();

    for (const step of [1, 2]) {
      const result = lossAndGradients(model, x, labels);
      if (step === 1) {
        record('logits_train', 'max_abs', maxAbs((await result.logits.data()) as Float32Array, need('ref.logits_train').data as Float32Array));
        record('loss_train', 'max_abs', maxAbs((await result.loss.data()) as Float32Array, need('ref.loss_train').data as Float32Array));
        for (const p of picks) record(`grad.${p}`, 'rel_l2', relL2(await torchData(p, result.grads.get(p)!), need(`ref.grad.${p}`).data as Float32Array));
        model.applyBatchStats(result.stats);
        for (const key of [...file.tensors.keys()].filter((k) => k.startsWith('ref.after_forward.'))) {
          const name = key.slice('ref.after_forward.'.length);
          const buffer = model.buffers.get(name);
          if (!buffer) throw new UserError(`${source}: ${key} names no running statistic of the model`, {exitCode: ExitCode.data});
          record(`after_forward.${name}`, 'max_abs', maxAbs((await buffer.data()) as Float32Array, need(key).data as Float32Array));
        }
      } else {
        model.applyBatchStats(result.stats);
      }
      optimizer.step(model.params, result.grads);
      disposeGradients(result);
      const tag = step === 1 ? 'after_step' : 'after_step2';
      for (const p of picks) {
        record(`${tag}.${p}`, 'update_rel_l2', relL2(await torchData(p, model.params.get(p)!), need(`ref.${tag}.${p}`).data as Float32Array, initial.get(p)!));
      }
    }
  } finally {
    tf.dispose([x, labels]);
    optimizer.dispose();
    model.dispose();
  }
  const worstOf = (m: QuantityError['measure']) => Math.max(0, ...quantities.filter((q) => q.measure === m).map((q) => q.error));
  return {
    ok: quantities.every((q) => q.ok),
    size,
    quantities,
    errors: Object.fromEntries(quantities.map((q) => [q.quantity, q.error])),
    worst: {forward: worstOf('max_abs'), gradient: worstOf('rel_l2'), update: worstOf('update_rel_l2')},
  };
}
