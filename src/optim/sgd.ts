import * as tf from '@tensorflow/tfjs-core';

import {sgdUpdate} from '../engine/sgd-kernel.js';

export interface SgdOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/** The seed's optimizer settings. */
export const SEED_SGD: SgdOptions = {lr: 0.1, momentum: 0.9, weightDecay: 5e-4};

/**
 * torch.optim.SGD (dampening 0, no Nesterov): d = g + wd·p; buf = d on the first step, else
 * buf = momentum·buf + d; p ← p − lr·buf. Weight decay applies to every parameter, as in the seed.
 */
export class SGD {
  options: SgdOptions;
  private readonly momentumBuffers = new Map<string, tf.Tensor>();

  constructor(options: SgdOptions) {
    this.options = {...options};
  }

  get lr(): number {
    return this.options.lr;
  }

  set lr(value: number) {
    this.options.lr = value;
  }

  step(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor> | tf.NamedTensorMap): void {
    const gradOf = (name: string) => (grads instanceof Map ? grads.get(name) : grads[name]);
    tf.tidy(() => {
      for (const [name, p] of params) {
        const g = gradOf(name);
        if (!g) throw new Error(`no gradient for parameter ${name}`);
        const prev = this.momentumBuffers.get(name);
        // One kernel per parameter where the backend has it (src/engine/sgd-kernel.ts).
        const [next, buf] = sgdUpdate(p, g, prev, this.options);
        if (this.options.momentum !== 0) {
          prev?.dispose();
          this.momentumBuffers.set(name, tf.keep(buf));
        }
        p.assign(next);
      }
    });
  }

  /** Momentum buffers (tfjs layout) for checkpoints; empty before the first step. */
  async momentumState(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, buf] of this.momentumBuffers) out.set(name, (await buf.data()) as Float32Array);
    return out;
  }

  loadMomentumState(state: Map<string, {shape: number[]; data: Float32Array}>): void {
    this.dispose();
    for (const [name, {shape, data}] of state) this.momentumBuffers.set(name, tf.tensor(data, shape, 'float32'));
  }

  /** Copies of the momentum buffers (tfjs shares the data until either side is updated), for restoreMomentum. */
  cloneMomentum(): Map<string, tf.Tensor> {
    return new Map([...this.momentumBuffers].map(([name, b]) => [name, tf.clone(b)]));
  }

  /** Puts back buffers from cloneMomentum (copied again: the snapshot stays valid). */
  restoreMomentum(buffers: Map<string, tf.Tensor>): void {
    this.dispose();
    for (const [name, b] of buffers) this.momentumBuffers.set(name, tf.clone(b));
  }

  dispose(): void {
    for (const b of this.momentumBuffers.values()) b.dispose();
    this.momentumBuffers.clear();
  }
}
