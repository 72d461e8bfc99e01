import {UserError, ExitCode} from '../cli/errors.js';

/**
 * The seed's ShuffleNetV2 (CIFAR variant) as data: which convs and BatchNorms exist, with their
 * PyTorch names, in PyTorch's `state_dict` order. The forward pass, the parameter list, the
 * summary table and safetensors I/O are all derived from this one description.
 */
export const SIZES = [0.5, 1, 1.5, 2] as const;
export type ModelSize = (typeof SIZES)[number];

const CONFIGS: Record<ModelSize, {outChannels: [number, number, number, number]; numBlocks: [number, number, number]}> = {
  0.5: {outChannels: [48, 96, 192, 1024], numBlocks: [3, 7, 3]},
  1: {outChannels: [116, 232, 464, 1024], numBlocks: [3, 7, 3]},
  1.5: {outChannels: [176, 352, 704, 1024], numBlocks: [3, 7, 3]},
  2: {outChannels: [224, 488, 976, 2048], numBlocks: [3, 7, 3]},
};

export const NUM_CLASSES = 10;
export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

export function parseModelSize(value: string | number): ModelSize {
  const n = Number(value);
  const size = SIZES.find((s) => s === n);
  if (size === undefined) {
    throw new UserError(`unknown model size ${value}: ShuffleNetV2 comes in sizes ${SIZES.join(', ')}`, {exitCode: ExitCode.usage, suggestion: 'use --size 0.5 (the seed default), 1, 1.5 or 2'});
  }
  return size;
}

/** A conv followed by its BatchNorm, as every conv in this network is. */
export interface ConvBn {
  conv: string; // e.g. "layer1.0.conv2"
  bn: string; // e.g. "layer1.0.bn2"
  inChannels: number;
  outChannels: number;
  kernel: 1 | 3;
  stride: 1 | 2;
  depthwise: boolean;
}

export interface DownBlockSpec {
  kind: 'down';
  name: string;
  inChannels: number;
  outChannels: number;
  /** Left branch: depthwise 3×3 s2 → 1×1 (ReLU). */
  left: [ConvBn, ConvBn];
  /** Right branch: 1×1 (ReLU) → depthwise 3×3 s2 → 1×1 (ReLU). */
  right: [ConvBn, ConvBn, ConvBn];
}

export interface BasicBlockSpec {
  kind: 'basic';
  name: string;
  channels: number;
  /** Channels kept untouched by the split: int(C · 0.5). */
  splitAt: number;
  /** Applied to the second half: 1×1 (ReLU) → depthwise 3×3 → 1×1 (ReLU). */
  branch: [ConvBn, ConvBn, ConvBn];
}

export type BlockSpec = DownBlockSpec | BasicBlockSpec;

export interface ArchitectureSpec {
  size: ModelSize;
  stem: ConvBn; // conv1 3→24, 3×3, s1, pad 1
  layers: BlockSpec[][]; // layer1..layer3
  head: ConvBn; // conv2 1×1 → outChannels[3]
  linear: {name: 'linear'; inFeatures: number; outFeatures: number};
}

function convBn(prefix: string, index: number, bnIndex: number, inChannels: number, outChannels: number, kernel: 1 | 3, stride: 1 | 2, depthwise: boolean): ConvBn {
  return {conv: `${prefix}conv${index}`, bn: `${prefix}bn${bnIndex}`, inChannels, outChannels, kernel, stride, depthwise};
}

export function architecture(size: ModelSize): ArchitectureSpec {
  const {outChannels, numBlocks} = CONFIGS[size];
  let inChannels = 24;
  const layers: BlockSpec[][] = [];
  for (let l = 0; l < 3; l++) {
    const out = outChannels[l];
    const p = `layer${l + 1}.`;
    const mid = Math.floor(out / 2);
    const blocks: BlockSpec[] = [
      {
        kind: 'down',
        name: `${p}0`,
        inChannels,
        outChannels: out,
        left: [convBn(`${p}0.`, 1, 1, inChannels, inChannels, 3, 2, true), convBn(`${p}0.`, 2, 2, inChannels, mid, 1, 1, false)],
        right: [
          convBn(`${p}0.`, 3, 3, inChannels, mid, 1, 1, false),
          convBn(`${p}0.`, 4, 4, mid, mid, 3, 2, true),
          convBn(`${p}0.`, 5, 5, mid, mid, 1, 1, false),
        ],
      },
    ];
    for (let b = 1; b <= numBlocks[l]; b++) {
      const half = Math.floor(out * 0.5);
      const q = `${p}${b}.`;
      blocks.push({
        kind: 'basic',
        name: `${p}${b}`,
        channels: out,
        splitAt: half,
        branch: [convBn(q, 1, 1, half, half, 1, 1, false), convBn(q, 2, 2, half, half, 3, 1, true), convBn(q, 3, 3, half, half, 1, 1, false)],
      });
    }
    layers.push(blocks);
    inChannels = out;
  }
  return {
    size,
    stem: convBn('', 1, 1, 3, 24, 3, 1, false),
    layers,
    head: convBn('', 2, 2, outChannels[2], outChannels[3], 1, 1, false),
    linear: {name: 'linear', inFeatures: outChannels[3], outFeatures: NUM_CLASSES},
  };
}

/** Every conv+BN of the network in PyTorch registration order. */
export function convBns(spec: ArchitectureSpec): ConvBn[] {
  const out: ConvBn[] = [spec.stem];
  for (const layer of spec.layers) {
    for (const block of layer) out.push(...(block.kind === 'down' ? [...block.left, ...block.right] : block.branch));
  }
  out.push(spec.head);
  return out;
}

export type ParamKind = 'conv' | 'depthwise' | 'bn_weight' | 'bn_bias' | 'linear_weight' | 'linear_bias';
export type BufferKind = 'running_mean' | 'running_var' | 'num_batches_tracked';

export interface StateEntry {
  name: string;
  /** PyTorch shape (conv OIHW, depthwise [C,1,kh,kw], linear [out,in]). */
  torchShape: number[];
  kind: ParamKind | BufferKind;
  trainable: boolean;
  /** fan_in of the owning conv/linear, for PyTorch's default init. */
  fanIn?: number;
}

/** The full `state_dict` of the seed's model, names, PyTorch shapes and order. */
export function stateEntries(spec: ArchitectureSpec): StateEntry[] {
  const entries: StateEntry[] = [];
  const push = (c: ConvBn) => {
    const perGroupIn = c.depthwise ? 1 : c.inChannels;
    entries.push({name: `${c.conv}.weight`, torchShape: [c.outChannels, perGroupIn, c.kernel, c.kernel], kind: c.depthwise ? 'depthwise' : 'conv', trainable: true, fanIn: perGroupIn * c.kernel * c.kernel});
    entries.push({name: `${c.bn}.weight`, torchShape: [c.outChannels], kind: 'bn_weight', trainable: true});
    entries.push({name: `${c.bn}.bias`, torchShape: [c.outChannels], kind: 'bn_bias', trainable: true});
    entries.push({name: `${c.bn}.running_mean`, torchShape: [c.outChannels], kind: 'running_mean', trainable: false});
    entries.push({name: `${c.bn}.running_var`, torchShape: [c.outChannels], kind: 'running_var', trainable: false});
    entries.push({name: `${c.bn}.num_batches_tracked`, torchShape: [], kind: 'num_batches_tracked', trainable: false});
  };
  for (const c of convBns(spec)) push(c);
  const {inFeatures, outFeatures} = spec.linear;
  entries.push({name: 'linear.weight', torchShape: [outFeatures, inFeatures], kind: 'linear_weight', trainable: true, fanIn: inFeatures});
  entries.push({name: 'linear.bias', torchShape: [outFeatures], kind: 'linear_bias', trainable: true, fanIn: inFeatures});
  return entries;
}

export function countParams(spec: ArchitectureSpec): number {
  return stateEntries(spec)
    .filter((e) => e.trainable)
    .reduce((n, e) => n + e.torchShape.reduce((a, b) => a * b, 1), 0);
}
