import type {ParamKind, BufferKind} from './architecture.js';

/**
 * PyTorch ↔ tfjs layouts. PyTorch stores conv weights OIHW, depthwise [C,1,kh,kw] and linear
 * [out,in]; tfjs wants HWIO, [kh,kw,C,1] and [in,out]. BN vectors are the same in both.
 */
export function tfShape(kind: ParamKind | BufferKind, torchShape: number[]): number[] {
  switch (kind) {
    case 'conv': {
      const [o, i, h, w] = torchShape;
      return [h, w, i, o];
    }
    case 'depthwise': {
      const [c, , h, w] = torchShape;
      return [h, w, c, 1];
    }
    case 'linear_weight': {
      const [o, i] = torchShape;
      return [i, o];
    }
    default:
      return torchShape;
  }
}

/** Permute a dense row-major array of `shape` by `perm` (out dim k = in dim perm[k]). */
function permute(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const rank = shape.length;
  const out = new Float32Array(data.length);
  const inStrides = new Array<number>(rank);
  inStrides[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) inStrides[d] = inStrides[d + 1] * shape[d + 1];
  const outShape = perm.map((p) => shape[p]);
  const strideOfOut = perm.map((p) => inStrides[p]);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d] * strideOfOut[d];
    out[o] = data[src];
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < outShape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** PyTorch data → tfjs data (same values, tfjs layout). */
export function torchToTf(kind: ParamKind | BufferKind, torchShape: number[], data: Float32Array): Float32Array {
  switch (kind) {
    case 'conv':
    case 'depthwise': // [C,1,h,w] → [h,w,1,C] has the same memory order as [h,w,C,1]
      return permute(data, torchShape, [2, 3, 1, 0]);
    case 'linear_weight':
      return permute(data, torchShape, [1, 0]);
    default:
      return data;
  }
}

/** tfjs data → PyTorch data. */
export function tfToTorch(kind: ParamKind | BufferKind, torchShape: number[], data: Float32Array): Float32Array {
  switch (kind) {
    case 'conv':
    case 'depthwise': {
      const [o, i, h, w] = torchShape;
      return permute(data, [h, w, i, o], [3, 2, 0, 1]);
    }
    case 'linear_weight': {
      const [o, i] = torchShape;
      return permute(data, [i, o], [1, 0]);
    }
    default:
      return data;
  }
}
