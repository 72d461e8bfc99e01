/**
 * One parameter's SGD update as one kernel on the wasm and cpu backends (DtrainSgdStep), instead
 * of the six tf ops of the update (mul, add, mul, add, mul, sub): per step that is 170 kernel calls
 * instead of 1,020 at ShuffleNetV2's 170 parameters, and each call costs the engine far more than
 * its few thousand multiply-adds. The kernel rounds every operation to float32 in the ops' order
 * (Math.fround of a float64 result equals the float32 operation: float64 has more than 2·24 + 2
 * bits), so it gives the ops' results bit for bit; other backends run the ops.
 */
import * as tf from '@tensorflow/tfjs-core';

import {cpuAndWasmConfigs, runF32Kernel} from './wasm/kernel-utils.js';

export const SGD_STEP = 'DtrainSgdStep';

export interface SgdStepAttrs {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/**
 * torch.optim.SGD for one parameter (dampening 0, no Nesterov): d = g + wd·p; buf = momentum·buf + d
 * (d itself on the first step, or without momentum); p' = p − lr·buf. Writes p' and buf.
 */
function sgdStep(p: Float32Array, g: Float32Array, prev: Float32Array | undefined, {lr, momentum, weightDecay}: SgdStepAttrs, pOut: Float32Array, bufOut: Float32Array): void {
  const f = Math.fround;
  // The ops' scalars are float32 tensors.
  const [lr32, momentum32, wd32] = [f(lr), f(momentum), f(weightDecay)];
  for (let i = 0; i < p.length; i++) {
    const d = weightDecay !== 0 ? f(g[i] + f(p[i] * wd32)) : g[i];
    const buf = momentum !== 0 && prev !== undefined ? f(f(prev[i] * momentum32) + d) : d;
    bufOut[i] = buf;
    pOut[i] = f(p[i] - f(buf * lr32));
  }
}

const configs = cpuAndWasmConfigs(SGD_STEP, (backendName, {inputs, backend, attrs}) => {
  const {param, grad, momentum} = inputs;
  const shapes = [param.shape, param.shape];
  const given = momentum ? [param, grad, momentum] : [param, grad];
  if (given.some((t) => t.shape.length !== param.shape.length || t.shape.some((n, i) => n !== param.shape[i]))) {
    throw new Error(`${SGD_STEP}: param, grad and momentum must have one shape, got ${given.map((t) => `[${t.shape}]`).join(', ')}`);
  }
  return runF32Kernel(backendName, backend, given, shapes, ([p, g, prev], [pOut, bufOut]) => sgdStep(p, g, prev, attrs as unknown as SgdStepAttrs, pOut, bufOut));
});
for (const config of configs) if (tf.getKernel(config.kernelName, config.backendName) === undefined) tf.registerKernel(config);

/**
 * One parameter's update: [p', buf] (buf is the momentum buffer to keep, or d without momentum).
 * `prev` is the momentum buffer of the previous step (none on the first). The kernel where the
 * backend has it, else the same tf ops.
 */
export function sgdUpdate(p: tf.Tensor, g: tf.Tensor, prev: tf.Tensor | undefined, attrs: SgdStepAttrs): [tf.Tensor, tf.Tensor] {
  if (tf.getKernel(SGD_STEP, tf.getBackend()) !== undefined) {
    const inputs: tf.NamedTensorMap = prev && attrs.momentum !== 0 ? {param: p, grad: g, momentum: prev} : {param: p, grad: g};
    return tf.engine().runKernel(SGD_STEP, inputs, attrs as unknown as tf.NamedAttrMap) as unknown as [tf.Tensor, tf.Tensor];
  }
  return sgdUpdateOps(p, g, prev, attrs);
}

/** sgdUpdate with tf ops only (the path of backends without the kernel). */
export function sgdUpdateOps(p: tf.Tensor, g: tf.Tensor, prev: tf.Tensor | undefined, {lr, momentum, weightDecay}: SgdStepAttrs): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const d = weightDecay !== 0 ? tf.add(g, tf.mul(p, weightDecay)) : g;
    const buf = momentum !== 0 && prev ? tf.add(tf.mul(prev, momentum), d) : tf.clone(d);
    return [tf.sub(p, tf.mul(buf, lr)), buf];
  });
}
