/**
 * float32 ↔ half kernels in WebAssembly SIMD (4 lanes of i32/f32, 8 values a loop turn), for the
 * array conversions of src/allreduce/fp16.ts: plain JS spends 2–4 ns a value on them (branches on
 * the value's range mispredict on gradients, whose magnitudes vary), which cost more than the bytes
 * they save on loopback. The module is assembled here byte by byte (no toolchain): 2.8 KB.
 *
 * The arithmetic is the scalar one of fp16.ts, lane-wise and branch-free (every range computed,
 * the right one selected by a mask): float32 → half after F. Giesen's float_to_half_fast3_rtne,
 * half → float32 after his half_to_float_fast (both IEEE-exact: round to nearest even, subnormals,
 * ±Infinity, NaN). WebAssembly's f32x4 arithmetic is IEEE single precision without flush-to-zero,
 * so every machine gives the same bits.
 */

import {addTo, countdown, END, F32, functionCode, get, I32, i32, i32const, LOOP, moduleBytes, name, op, section, set, splat32, V128, vec, webAssembly} from '../util/wasm-assembler.js';

/** Locals of every function: parameters first (fixed per function), then these v128 temporaries. */
interface Temps {
  v: number; // float32 bits in
  f: number;
  sign: number;
  r: number;
  acc: number; // counts per lane (overflows, or non-finite halves)
  hv: number; // half bits in (zero-extended)
  o: number;
  e: number;
  div: number; // the divisor in every lane
}

/** Stack: → i32x4 of half bits for the float32 lanes in local v; counts finite → ±Infinity in acc. */
function encode4(t: Temps): number[] {
  return [
    ...get(t.v), ...splat32(0x7fffffff), ...op.and, ...set(t.f),
    ...get(t.v), ...i32const(16), ...op.shrU, ...splat32(0x8000), ...op.and, ...set(t.sign),
    // normal: rebias 127 → 15 and round the 13 dropped bits to nearest even
    ...get(t.f), ...splat32(0xc8000fff), ...op.add, ...get(t.f), ...i32const(13), ...op.shrU, ...splat32(1), ...op.and, ...op.add, ...i32const(13), ...op.shrU, ...set(t.r),
    // below 2^−14: a float32 addition of 0.5 rounds to the subnormal grid
    ...get(t.f), ...splat32(0x3f000000), ...op.fadd, ...splat32(0x3f000000), ...op.sub,
    ...get(t.r), ...get(t.f), ...splat32(0x38800000), ...op.ltU, ...op.bitselect, ...set(t.r),
    // ≥ 65520 (and Infinity): 0x7c00; the finite ones counted
    ...splat32(0x7c00), ...get(t.r), ...get(t.f), ...splat32(0x477ff000), ...op.geU, ...op.bitselect, ...set(t.r),
    ...get(t.acc), ...get(t.f), ...splat32(0x477ff000), ...op.geU, ...get(t.f), ...splat32(0x7f800000), ...op.ltU, ...op.and, ...op.sub, ...set(t.acc),
    // NaN: quiet, top payload bits kept
    ...get(t.f), ...i32const(13), ...op.shrU, ...splat32(0x3ff), ...op.and, ...splat32(0x7e00), ...op.or,
    ...get(t.r), ...get(t.f), ...splat32(0x7f800000), ...op.gtU, ...op.bitselect,
    ...get(t.sign), ...op.or,
  ];
}

/** Stack: → float32 bits of the zero-extended half lanes in local hv; with `count`, counts ±Infinity and NaN in acc. */
function decode4(t: Temps, count: boolean): number[] {
  return [
    ...get(t.hv), ...splat32(0x7fff), ...op.and, ...i32const(13), ...op.shl, ...set(t.o),
    ...get(t.o), ...splat32(0x0f800000), ...op.and, ...set(t.e),
    ...(count ? [...get(t.acc), ...get(t.e), ...splat32(0x0f800000), ...op.eq, ...op.sub, ...set(t.acc)] : []),
    ...get(t.o), ...splat32(0x38000000), ...op.add, ...set(t.o),
    // Infinity/NaN: exponent to 255
    ...get(t.o), ...get(t.e), ...splat32(0x0f800000), ...op.eq, ...splat32(0x38000000), ...op.and, ...op.add, ...set(t.o),
    // zero/subnormal: (2^−14 + m·2^−24) − 2^−14, exact in float32
    ...get(t.o), ...splat32(0x00800000), ...op.add, ...splat32(0x38800000), ...op.fsub,
    ...get(t.o), ...get(t.e), ...splat32(0), ...op.eq, ...op.bitselect,
    ...get(t.hv), ...splat32(0x8000), ...op.and, ...i32const(16), ...op.shl, ...op.or,
  ];
}

/** The four lanes of acc summed (overflow count). */
function sumAcc(t: Temps): number[] {
  return [...get(t.acc), ...op.extractLane(0), ...get(t.acc), ...op.extractLane(1), i32.add, ...get(t.acc), ...op.extractLane(2), i32.add, ...get(t.acc), ...op.extractLane(3), i32.add];
}

/** loop { body; ptrs += steps; n -= 8; } while n > 0 (n a positive multiple of 8). */
function loop8(n: number, body: number[], advance: Array<[number, number]>): number[] {
  return [...LOOP, ...body, ...advance.flatMap(([local, bytes]) => addTo(local, ...i32const(bytes))), ...countdown(n, 8), END];
}

const TEMP_COUNT = 9;
function temps(first: number): Temps {
  const names: Array<keyof Temps> = ['v', 'f', 'sign', 'r', 'acc', 'hv', 'o', 'e', 'div'];
  return Object.fromEntries(names.map((k, i) => [k, first + i])) as unknown as Temps;
}

/** encode(x, h, n, divisor) → overflows: h[i] = half(x[i] / divisor). */
function encodeBody(): number[] {
  const [x, h, n, d] = [0, 1, 2, 3];
  const t = temps(4);
  const half = (offset: number) => [...get(x), ...op.load(offset), ...get(t.div), ...op.fdiv, ...set(t.v), ...encode4(t)];
  return [...get(d), ...op.f32splat, ...set(t.div), ...loop8(n, [...get(h), ...half(0), ...half(16), ...op.narrowU, ...op.store()], [[x, 32], [h, 16]]), ...sumAcc(t)];
}

/** decode(h, x, n) → non-finite count: x[i] = float32(h[i]). */
function decodeBody(): number[] {
  const [h, x, n] = [0, 1, 2];
  const t = temps(3);
  const four = (offset: number) => [...get(x), ...get(h), ...op.load16x4u(offset), ...set(t.hv), ...decode4(t, true), ...op.store(offset * 2)];
  return [...loop8(n, [...four(0), ...four(8)], [[h, 16], [x, 32]]), ...sumAcc(t)];
}

/** accumulate(h, x, n, divisor) → overflows: h[i] = half(float32(h[i]) + x[i] / divisor), in float32. */
function accumulateBody(): number[] {
  const [h, x, n, d] = [0, 1, 2, 3];
  const t = temps(4);
  const sum = (offset: number) => [...get(h), ...op.load16x4u(offset / 2), ...set(t.hv), ...decode4(t, false), ...get(x), ...op.load(offset), ...get(t.div), ...op.fdiv, ...op.fadd, ...set(t.v), ...encode4(t)];
  return [...get(d), ...op.f32splat, ...set(t.div), ...loop8(n, [...get(h), ...sum(0), ...sum(16), ...op.narrowU, ...op.store()], [[x, 32], [h, 16]]), ...sumAcc(t)];
}

function func(body: number[]): number[] {
  return functionCode([[TEMP_COUNT, V128]], body);
}

function assemble(): Uint8Array {
  const types = [
    [0x60, ...vec([[I32], [I32], [I32], [F32]]), ...vec([[I32]])], // encode, accumulate
    [0x60, ...vec([[I32], [I32], [I32]]), ...vec([[I32]])], // decode
  ];
  return moduleBytes(
    section(1, vec(types)),
    section(3, vec([[0], [1], [0]])),
    section(5, vec([[0x00, 1]])),
    section(7, vec([[...name('encode'), 0x00, 0], [...name('decode'), 0x00, 1], [...name('accumulate'), 0x00, 2], [...name('memory'), 0x02, 0]])),
    section(10, vec([func(encodeBody()), func(decodeBody()), func(accumulateBody())])),
  );
}

interface Exports {
  encode(x: number, h: number, n: number, divisor: number): number;
  decode(h: number, x: number, n: number): number;
  accumulate(h: number, x: number, n: number, divisor: number): number;
  memory: {buffer: ArrayBuffer; grow(pages: number): number};
}

const PAGE = 65536;
const exports = new webAssembly.Instance(new webAssembly.Module(assemble())).exports as Exports;

/**
 * Room for n values (rounded up to 8: the kernels work 8 at a time, the padding zeroed) as a
 * float32 region and a half region in the module's memory, which grows on demand.
 */
function regions(n: number): {x: Float32Array; h: Uint16Array; xPtr: number; hPtr: number; padded: number} {
  const padded = Math.max(8, Math.ceil(n / 8) * 8);
  const bytes = padded * 6;
  const have = exports.memory.buffer.byteLength;
  if (bytes > have) exports.memory.grow(Math.ceil((bytes - have) / PAGE));
  const buffer = exports.memory.buffer;
  const x = new Float32Array(buffer, 0, padded);
  const h = new Uint16Array(buffer, padded * 4, padded);
  return {x, h, xPtr: 0, hPtr: padded * 4, padded};
}

/** out[i] = half(x[i] / divisor); returns how many finite values became ±Infinity. */
export function simdEncode(x: Float32Array, out: Uint16Array, divisor: number): number {
  const m = regions(x.length);
  m.x.set(x);
  m.x.fill(0, x.length);
  const overflowed = exports.encode(m.xPtr, m.hPtr, m.padded, divisor);
  out.set(m.h.subarray(0, x.length));
  return overflowed;
}

/** out[i] = float32(h[i]); returns how many are ±Infinity or NaN. */
export function simdDecode(h: Uint16Array, out: Float32Array): number {
  const m = regions(h.length);
  m.h.set(h);
  m.h.fill(0, h.length);
  const nonFinite = exports.decode(m.hPtr, m.xPtr, m.padded);
  out.set(m.x.subarray(0, h.length));
  return nonFinite;
}

/** h[i] = half(float32(h[i]) + x[i] / divisor) in float32 arithmetic, in place; returns how many finite values became ±Infinity. */
export function simdAccumulate(h: Uint16Array, x: Float32Array, divisor: number): number {
  const m = regions(h.length);
  m.h.set(h);
  m.h.fill(0, h.length);
  m.x.set(x.subarray(0, h.length));
  m.x.fill(0, h.length);
  const overflowed = exports.accumulate(m.hPtr, m.xPtr, m.padded, divisor);
  h.set(m.h.subarray(0, h.length));
  return overflowed;
}
