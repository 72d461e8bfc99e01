import * as tf from '@tensorflow/tfjs-core';

import {ExitCode, UserError} from '../cli/errors.js';
import {Random} from '../util/random.js';
import {
  architecture,
  type ArchitectureSpec,
  type BlockSpec,
  type ConvBn,
  type ModelSize,
  type StateEntry,
  stateEntries,
} from './architecture.js';
import {type BatchStats, batchNormEval, batchNormTrain, updateRunningStats} from './batchnorm.js';
import {shuffleSplit} from './channel-shuffle.js';
import {globalAvgPool} from './pooling.js';
import {tfShape, tfToTorch, torchToTf} from './layout.js';
import type {SafeData, SafeTensor} from './safetensors.js';

// Where the tests (and older callers) import it from.
export {channelShuffle} from './channel-shuffle.js';

export interface ForwardResult {
  logits: tf.Tensor2D;
  /** Training mode only: batch statistics per BN name (kept tensors; see applyBatchStats). */
  stats: Map<string, BatchStats>;
}

/**
 * ShuffleNetV2 as in the seed, NHWC in tfjs. Trainable parameters are tf.Variables keyed by their
 * PyTorch `state_dict` names (tfjs layouts), running statistics are non-trainable variables, and
 * num_batches_tracked is kept as a number per BN.
 */
export class ShuffleNetV2 {
  readonly spec: ArchitectureSpec;
  readonly entries: StateEntry[];
  readonly params = new Map<string, tf.Variable>();
  readonly buffers = new Map<string, tf.Variable>();
  readonly numBatchesTracked = new Map<string, number>();
  /** tfjs variable names are global to the engine, so each instance prefixes its own. */
  private static instances = 0;

  private constructor(size: ModelSize, values: (entry: StateEntry) => Float32Array | number) {
    this.spec = architecture(size);
    this.entries = stateEntries(this.spec);
    const prefix = `shufflenetv2#${++ShuffleNetV2.instances}/`;
    for (const entry of this.entries) {
      const value = values(entry);
      if (entry.kind === 'num_batches_tracked') {
        this.numBatchesTracked.set(entry.name, value as number);
        continue;
      }
      const tensor = tf.tensor(torchToTf(entry.kind, entry.torchShape, value as Float32Array), tfShape(entry.kind, entry.torchShape), 'float32');
      const variable = tf.variable(tensor, entry.trainable, prefix + entry.name);
      tensor.dispose();
      (entry.trainable ? this.params : this.buffers).set(entry.name, variable);
    }
  }

  get size(): ModelSize {
    return this.spec.size;
  }

  /** PyTorch's default initialisation (kaiming_uniform a=√5 ⇒ U(±1/√fan_in); BN γ=1 β=0; running 0/1), seeded. */
  static create(size: ModelSize, seed: number): ShuffleNetV2 {
    const rng = new Random(seed);
    return new ShuffleNetV2(size, (entry) => {
      const count = entry.torchShape.reduce((a, b) => a * b, 1);
      switch (entry.kind) {
        case 'conv':
        case 'depthwise':
        case 'linear_weight':
        case 'linear_bias': {
          const bound = 1 / Math.sqrt(entry.fanIn!);
          return Float32Array.from({length: count}, () => rng.uniform(-bound, bound));
        }
        case 'bn_weight':
        case 'running_var':
          return new Float32Array(count).fill(1);
        case 'num_batches_tracked':
          return 0;
        default:
          return new Float32Array(count);
      }
    });
  }

  /** Build from a PyTorch-named state dict (e.g. a safetensors file; `prefix` such as "model."). */
  static fromState(size: ModelSize, tensors: Map<string, SafeTensor>, prefix = ''): ShuffleNetV2 {
    return new ShuffleNetV2(size, (entry) => {
      const t = tensors.get(prefix + entry.name);
      const want = entry.torchShape.join(',');
      if (!t) throw new UserError(`state dict has no tensor ${prefix + entry.name}`, {exitCode: ExitCode.data, suggestion: `is it a ShuffleNetV2 size ${size} checkpoint? try another --size`});
      if (t.shape.join(',') !== want) {
        throw new UserError(`tensor ${prefix + entry.name} has shape [${t.shape}], expected [${want}] for size ${size}`, {exitCode: ExitCode.data, suggestion: 'pass the --size the checkpoint was trained with'});
      }
      if (entry.kind === 'num_batches_tracked') return Number((t.data as BigInt64Array)[0] ?? 0);
      if (t.dtype !== 'F32') throw new UserError(`tensor ${prefix + entry.name} is ${t.dtype}, expected F32`, {exitCode: ExitCode.data});
      return t.data as Float32Array;
    });
  }

  /** The full state dict in PyTorch names and layouts, ready for safetensors. */
  async stateDict(): Promise<Map<string, {shape: number[]; data: SafeData}>> {
    const out = new Map<string, {shape: number[]; data: SafeData}>();
    for (const entry of this.entries) {
      if (entry.kind === 'num_batches_tracked') {
        out.set(entry.name, {shape: [], data: BigInt64Array.of(BigInt(this.numBatchesTracked.get(entry.name)!))});
        continue;
      }
      const variable = (entry.trainable ? this.params : this.buffers).get(entry.name)!;
      const data = (await variable.data()) as Float32Array;
      out.set(entry.name, {shape: entry.torchShape, data: tfToTorch(entry.kind, entry.torchShape, data)});
    }
    return out;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.params.values()];
  }

  /** Forward pass on NHWC images normalised like training. */
  forward(x: tf.Tensor4D, training: boolean): ForwardResult {
    const stats = new Map<string, BatchStats>();
    const logits = tf.tidy(() => {
      const convBn = (input: tf.Tensor4D, c: ConvBn, relu: boolean): tf.Tensor4D => {
        const w = this.params.get(`${c.conv}.weight`)!;
        const pad = c.kernel === 3 ? 1 : 0; // the seed's symmetric padding=1, not TF 'same'
        const conv = c.depthwise
          ? tf.depthwiseConv2d(input, w as tf.Tensor4D, c.stride, pad)
          : tf.conv2d(input, w as tf.Tensor4D, c.stride, pad);
        const gamma = this.params.get(`${c.bn}.weight`)! as tf.Tensor1D;
        const beta = this.params.get(`${c.bn}.bias`)! as tf.Tensor1D;
        let y: tf.Tensor4D;
        if (training) {
          const out = batchNormTrain(conv, gamma, beta);
          stats.set(c.bn, out.stats);
          y = out.y;
        } else {
          y = batchNormEval(conv, gamma, beta, this.buffers.get(`${c.bn}.running_mean`) as tf.Tensor1D, this.buffers.get(`${c.bn}.running_var`) as tf.Tensor1D);
        }
        return relu ? tf.relu(y) : y;
      };
      const chain = (input: tf.Tensor4D, steps: ConvBn[], relus: boolean[]) => steps.reduce((h, c, i) => convBn(h, c, relus[i]), input);
      // A block's output is channelShuffle(concat([a, b])); it is kept as the halves [a, b] so
      // that the shuffle and the next block's split are one copy (shuffleSplit).
      type Halves = [tf.Tensor4D, tf.Tensor4D];
      const whole = (input: tf.Tensor4D | Halves) => (Array.isArray(input) ? shuffleSplit(input[0], input[1], 1)[0] : input);
      const block = (input: tf.Tensor4D | Halves, b: BlockSpec): Halves => {
        if (b.kind === 'down') {
          const x = whole(input);
          return [chain(x, b.left, [false, true]), chain(x, b.right, [true, false, true])];
        }
        const [x1, x2] = Array.isArray(input) && b.splitAt * 2 === b.channels ? shuffleSplit(input[0], input[1], 2) : splitAt(whole(input), b.splitAt);
        return [x1, chain(x2, b.branch, [true, false, true])];
      };
      let out: tf.Tensor4D | Halves = convBn(x, this.spec.stem, true);
      for (const layer of this.spec.layers) for (const b of layer) out = block(out, b);
      const h = convBn(whole(out), this.spec.head, true);
      if (h.shape[1] !== 4 || h.shape[2] !== 4) throw new Error(`the head expects a 4×4 feature map, got ${h.shape[1]}×${h.shape[2]}`);
      const flat = globalAvgPool(h); // F.avg_pool2d(out, 4) on the 4×4 map, flattened
      return tf.add(tf.matMul(flat, this.params.get('linear.weight')! as tf.Tensor2D), this.params.get('linear.bias')!) as tf.Tensor2D;
    });
    return {logits, stats};
  }

  /** After a training step: running-stat update (momentum 0.1, unbiased var), then free the stats. */
  applyBatchStats(stats: Map<string, BatchStats>): void {
    for (const [bn, s] of stats) {
      updateRunningStats(this.buffers.get(`${bn}.running_mean`)!, this.buffers.get(`${bn}.running_var`)!, s);
      this.numBatchesTracked.set(`${bn}.num_batches_tracked`, this.numBatchesTracked.get(`${bn}.num_batches_tracked`)! + 1);
    }
    disposeStats(stats);
  }

  dispose(): void {
    for (const v of [...this.params.values(), ...this.buffers.values()]) v.dispose();
  }
}

export function disposeStats(stats: Map<string, BatchStats>): void {
  for (const s of stats.values()) tf.dispose([s.mean, s.variance]);
  stats.clear();
}

/** x cut along channels at `at`. */
function splitAt(x: tf.Tensor4D, at: number): [tf.Tensor4D, tf.Tensor4D] {
  return [tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, at]), tf.slice(x, [0, 0, 0, at], [-1, -1, -1, x.shape[3] - at])];
}
