import {architecture, type ConvBn, countParams, type ModelSize} from './architecture.js';

export interface SummaryRow {
  /** PyTorch module path, e.g. "layer1.0.conv2". */
  name: string;
  type: 'Conv2d' | 'BatchNorm2d' | 'SplitBlock' | 'ShuffleBlock' | 'BasicBlock' | 'DownBlock' | 'Linear';
  /** PyTorch NCHW output shape with -1 for the batch, as torchsummary prints it. */
  outputShape: number[];
  params: number;
}

export interface ModelSummary {
  size: ModelSize;
  inputShape: number[];
  layers: SummaryRow[];
  totalParams: number;
  trainableParams: number;
}

/**
 * The per-layer table of the seed's `summary(net, (3, 32, 32))`: modules in the order their forward
 * finishes (children before their block), output shapes, and directly owned parameters.
 */
export function modelSummary(size: ModelSize): ModelSummary {
  const spec = architecture(size);
  const rows: SummaryRow[] = [];
  let hw = 32;
  const convBn = (c: ConvBn) => {
    hw = c.stride === 2 ? hw / 2 : hw;
    const weights = c.outChannels * (c.depthwise ? 1 : c.inChannels) * c.kernel * c.kernel;
    rows.push({name: c.conv, type: 'Conv2d', outputShape: [-1, c.outChannels, hw, hw], params: weights});
    rows.push({name: c.bn, type: 'BatchNorm2d', outputShape: [-1, c.outChannels, hw, hw], params: 2 * c.outChannels});
  };
  convBn(spec.stem);
  for (const layer of spec.layers) {
    for (const block of layer) {
      if (block.kind === 'down') {
        const inHw = hw;
        for (const c of block.left) convBn(c);
        hw = inHw;
        for (const c of block.right) convBn(c);
        rows.push({name: `${block.name}.shuffle`, type: 'ShuffleBlock', outputShape: [-1, block.outChannels, hw, hw], params: 0});
        rows.push({name: block.name, type: 'DownBlock', outputShape: [-1, block.outChannels, hw, hw], params: 0});
      } else {
        rows.push({name: `${block.name}.split`, type: 'SplitBlock', outputShape: [-1, block.splitAt, hw, hw], params: 0});
        for (const c of block.branch) convBn(c);
        rows.push({name: `${block.name}.shuffle`, type: 'ShuffleBlock', outputShape: [-1, block.channels, hw, hw], params: 0});
        rows.push({name: block.name, type: 'BasicBlock', outputShape: [-1, block.channels, hw, hw], params: 0});
      }
    }
  }
  convBn(spec.head);
  const {inFeatures, outFeatures} = spec.linear;
  rows.push({name: 'linear', type: 'Linear', outputShape: [-1, outFeatures], params: inFeatures * outFeatures + outFeatures});
  const totalParams = rows.reduce((n, r) => n + r.params, 0);
  if (totalParams !== countParams(spec)) throw new Error(`summary rows count ${totalParams} params, the state dict ${countParams(spec)}`);
  return {size, inputShape: [3, 32, 32], layers: rows, totalParams, trainableParams: totalParams};
}

/** Multiply-accumulates of one forward pass on one 32×32 image (convs and the linear layer). */
export function forwardMacs(size: ModelSize): number {
  const summary = modelSummary(size);
  return summary.layers
    .filter((r) => r.type === 'Conv2d' || r.type === 'Linear')
    .reduce((n, r) => n + r.params * (r.outputShape.length === 4 ? r.outputShape[2] * r.outputShape[3] : 1), 0);
}
