/**
 * BatchNorm's per-channel reductions over [rows, C] float32 data in tfjs-wasm's heap, in
 * WebAssembly SIMD with float64 lanes (as the JS loops they replace sum, in another order):
 *
 * - `sum`: Σ x (the batch mean's pass);
 * - `sqdev`: Σ (x − m)², m the float64 mean (the variance's pass);
 * - `sumdot`: Σ dy and Σ dy·x̂ (the backward's; a product of two float32 values is exact in float64).
 *
 * What made an earlier SIMD attempt no faster than JS was loading and storing each channel's sums
 * every row. Here a block of 8 channels keeps its sums in registers down a block of rows, whose
 * data stays in L1 while the channel blocks pass over it (blockRows, as the JS loops do).
 */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import {addTo, advanceBelow, countdown, END, functionCode, get, I32, i32, i32const, LOOP, moduleBytes, name, op, section, set, splat32, V128, vec} from '../../util/wasm-assembler.js';
import {blockRows, disposeInfos, float64Scratch, float64Values, heapAddress, heapKernels} from './kernel-utils.js';
import type {WasmBackend} from './kernel-utils.js';

const KINDS = ['sum', 'sqdev', 'sumdot'] as const;
type Kind = (typeof KINDS)[number];
/** Vectors (4 channels each) per block: 2, then a one-vector tail. */
const WIDTHS = [2, 1] as const;
type Name = `${Kind}${(typeof WIDTHS)[number]}`;

/**
 * kind(a, b, out, m, rows, rowBytes, block, channelBegin, channelEnd): adds this kind's sums of
 * channels [begin, end) (float32 byte offsets in a row) into float64 `out` (and for sumdot
 * `out + 8C`, C = rowBytes / 4); `b` is x̂ for sumdot, `m` the float64 means for sqdev.
 */
function kindCode(kind: Kind, G: number): number[] {
  const [a, b, out, m, rows, rowBytes, block, channelBegin, channelEnd] = Array.from({length: 9}, (_, i) => i);
  const [r0, n, ch, ap, bp, cnt, at] = Array.from({length: 7}, (_, i) => 9 + i);
  const sets = kind === 'sumdot' ? 2 : 1; // sums per channel
  const sums = 16; // sets·2G float64x2 sums, then G means (sqdev), then temporaries
  const sum = (s: number, k: number) => sums + s * 2 * G + k;
  const mean = (k: number) => sums + sets * 2 * G + k;
  const [va, vb, wa] = [sums + sets * 2 * G + 2 * G, sums + sets * 2 * G + 2 * G + 1, sums + sets * 2 * G + 2 * G + 2];
  const upperToLower = op.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
  const widened = (local: number, h: number) => [...get(local), ...(h === 1 ? [...get(local), ...upperToLower] : []), ...op.promoteLow];
  const accumulate = (k: number, h: number): number[] => {
    if (kind === 'sum') return [...get(sum(0, k)), ...widened(va, h), ...op.dadd, ...set(sum(0, k))];
    if (kind === 'sqdev') return [...widened(va, h), ...get(mean(k)), ...op.dsub, ...set(wa), ...get(sum(0, k)), ...get(wa), ...get(wa), ...op.dmul, ...op.dadd, ...set(sum(0, k))];
    return [
      ...widened(va, h), ...set(wa),
      ...get(sum(0, k)), ...get(wa), ...op.dadd, ...set(sum(0, k)),
      ...get(sum(1, k)), ...get(wa), ...widened(vb, h), ...op.dmul, ...op.dadd, ...set(sum(1, k)),
    ];
  };
  const row = [
    ...Array.from({length: G}, (_, v) => [
      ...get(ap), ...op.load(16 * v), ...set(va),
      ...(kind === 'sumdot' ? [...get(bp), ...op.load(16 * v), ...set(vb)] : []),
      ...accumulate(2 * v, 0), ...accumulate(2 * v + 1, 1),
    ]).flat(),
    ...addTo(ap, ...get(rowBytes)),
    ...(kind === 'sumdot' ? addTo(bp, ...get(rowBytes)) : []),
    ...countdown(cnt),
  ];
  // Float64 sums sit at twice the float32 byte offset; sumdot's second set C·8 bytes further.
  const flush = [
    ...get(out), ...get(ch), ...i32const(1), i32.shl, i32.add, ...set(at),
    ...Array.from({length: sets}, (_, s) => Array.from({length: 2 * G}, (_, k) => {
      const address = [...get(at), ...(s === 1 ? [...get(rowBytes), ...i32const(1), i32.shl, i32.add] : [])];
      return [...address, ...address, ...op.load(16 * k), ...get(sum(s, k)), ...op.dadd, ...op.store(16 * k)];
    }).flat()).flat(),
  ];
  const start = (base: number) => [...get(base), ...get(r0), ...get(rowBytes), i32.mul, i32.add, ...get(ch), i32.add];
  const channelBlock = [
    ...Array.from({length: sets * 2 * G}, (_, k) => [...splat32(0), ...set(sums + k)]).flat(),
    ...(kind === 'sqdev' ? Array.from({length: 2 * G}, (_, k) => [...get(m), ...get(ch), ...i32const(1), i32.shl, i32.add, ...op.load(16 * k), ...set(mean(k))]).flat() : []),
    ...start(a), ...set(ap),
    ...(kind === 'sumdot' ? [...start(b), ...set(bp)] : []),
    ...get(n), ...set(cnt),
    ...LOOP, ...row, END,
    ...flush,
    ...advanceBelow(ch, channelEnd, ...i32const(16 * G)),
  ];
  const body = [
    ...i32const(0), ...set(r0),
    ...LOOP,
    // n = min(block, rows − r0)
    ...get(rows), ...get(r0), i32.sub, ...set(n), ...get(n), ...get(block), ...get(n), ...get(block), i32.ltS, i32.select, ...set(n),
    ...get(channelBegin), ...set(ch),
    ...LOOP, ...channelBlock, END,
    ...advanceBelow(r0, rows, ...get(block)),
    END,
  ];
  return functionCode([[7, I32], [sets * 2 * G + 2 * G + 3, V128]], body);
}

const KERNELS = KINDS.flatMap((kind) => WIDTHS.map((G) => ({kind, G, name: `${kind}${G}` as Name})));

function assemble(): Uint8Array {
  const signature = [0x60, ...vec(Array.from({length: 9}, () => [I32])), ...vec([])];
  return moduleBytes(
    section(1, vec([signature])),
    section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    section(3, vec(KERNELS.map(() => [0]))),
    section(7, vec(KERNELS.map((k, i) => [...name(k.name), 0x00, i]))),
    section(10, vec(KERNELS.map(({kind, G}) => kindCode(kind, G)))),
  );
}

type Kernel = (a: number, b: number, out: number, m: number, rows: number, rowBytes: number, block: number, channelBegin: number, channelEnd: number) => void;

/**
 * Runs `kind` over x (and x̂ for sumdot) viewed as [rows, C]; returns its float64 sums ([C], or
 * [2C] for sumdot: Σ dy then Σ dy·x̂). `means` (sqdev) are the float64 channel means.
 */
function channelSums(backend: WasmBackend, kind: Kind, x: TensorInfo, other: TensorInfo | undefined, means?: Float64Array): Float64Array {
  const kernels = heapKernels<Record<Name, Kernel>>(backend, 'channel-sums-simd', assemble);
  const channels = x.shape[3];
  const rows = x.shape[0] * x.shape[1] * x.shape[2];
  const sets = kind === 'sumdot' ? 2 : 1;
  // The sums, then the means.
  const scratch = float64Scratch(backend, (sets + 1) * channels);
  try {
    if (means) float64Values(backend, scratch).set(means, sets * channels);
    const bytes = 4 * channels;
    const full = 32 * Math.floor(channels / 8);
    const args = [heapAddress(backend, x), other ? heapAddress(backend, other) : 0, scratch.base, scratch.base + 8 * sets * channels, rows, bytes, blockRows(channels)] as const;
    if (full > 0) kernels[`${kind}2`](...args, 0, full);
    if (full < bytes) kernels[`${kind}1`](...args, full, bytes);
    return float64Values(backend, scratch).slice(0, sets * channels);
  } finally {
    disposeInfos(backend, [scratch.tensor]);
  }
}

/**
 * Per-channel float64 mean and biased variance of x viewed as [rows, C], in two passes (Σ x, then
 * Σ (x − mean)² with the float64 mean: no cancellation); fitsSimdPasses(x) must hold.
 */
export function simdMoments(backend: WasmBackend, x: TensorInfo): {mean: Float64Array; variance: Float64Array} {
  const rows = x.shape[0] * x.shape[1] * x.shape[2];
  const mean = channelSums(backend, 'sum', x, undefined).map((s) => s / rows);
  const variance = channelSums(backend, 'sqdev', x, undefined, mean).map((s) => s / rows);
  return {mean, variance};
}

/** Per-channel float64 Σ dy and Σ dy·x̂ (fitsSimdPasses(dy) must hold). */
export function simdGradSums(backend: WasmBackend, dy: TensorInfo, xhat: TensorInfo): {sumDy: Float64Array; sumDyXhat: Float64Array} {
  const sums = channelSums(backend, 'sumdot', dy, xhat);
  const channels = dy.shape[3];
  return {sumDy: sums.subarray(0, channels), sumDyXhat: sums.subarray(channels)};
}
