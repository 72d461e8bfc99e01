/**
 * Just enough of a WebAssembly assembler to write small SIMD kernels in TypeScript, byte by byte,
 * with no toolchain: LEB128 immediates, the instructions dtrain's kernels use, module sections.
 * Users: src/allreduce/fp16-simd.ts (float32 ↔ half), src/engine/wasm/batchnorm-simd.ts, src/engine/wasm/gemm-simd.ts.
 */

export const V128 = 0x7b;
export const I32 = 0x7f;
export const F32 = 0x7d;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

export const simd = (code: number, ...imm: number[]): number[] => [0xfd, ...uleb(code), ...imm];
export const get = (i: number) => [0x20, ...uleb(i)];
export const set = (i: number) => [0x21, ...uleb(i)];
export const i32const = (n: number) => [0x41, ...sleb(n | 0)];
/** v128.const with the same 32-bit pattern in all four lanes. */
export function splat32(bits: number): number[] {
  const lane = [bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, (bits >>> 24) & 0xff];
  return simd(0x0c, ...lane, ...lane, ...lane, ...lane);
}
export const memarg = (offset: number, align: number) => [...uleb(align), ...uleb(offset)];
export const op = {
  load: (offset = 0) => simd(0x00, ...memarg(offset, 4)),
  load16x4u: (offset = 0) => simd(0x04, ...memarg(offset, 3)),
  /** v128.load32_splat: one float32 (or i32) from memory in all four lanes. */
  load32splat: (offset = 0) => simd(0x09, ...memarg(offset, 2)),
  store: (offset = 0) => simd(0x0b, ...memarg(offset, 4)),
  f32splat: simd(0x13),
  extractLane: (lane: number) => simd(0x1b, lane),
  eq: simd(0x37),
  ltU: simd(0x3a),
  gtU: simd(0x3c),
  geU: simd(0x40),
  and: simd(0x4e),
  or: simd(0x50),
  bitselect: simd(0x52),
  narrowU: simd(0x86),
  shl: simd(0xab),
  shrU: simd(0xad),
  add: simd(0xae),
  sub: simd(0xb1),
  fadd: simd(0xe4),
  fsub: simd(0xe5),
  fmul: simd(0xe6),
  fdiv: simd(0xe7),
  /** i8x16.shuffle: byte i of the result is byte lanes[i] of a‖b. */
  shuffle: (lanes: number[]) => simd(0x0d, ...lanes),
  demote: simd(0x5e), // f32x4.demote_f64x2_zero
  promoteLow: simd(0x5f), // f64x2.promote_low_f32x4
  dadd: simd(0xf0),
  dsub: simd(0xf1),
  dmul: simd(0xf2),
};

/** Scalar i32 instructions and control flow the kernels' loops use. */
export const i32 = {add: 0x6a, sub: 0x6b, mul: 0x6c, shl: 0x74, ltS: 0x48, gtS: 0x4a, tee: 0x22, select: 0x1b};
export const LOOP = [0x03, 0x40];
export const BR_IF_LOOP = [0x0d, 0x00];
export const END = 0x0b;

/** local += value (an i32 expression: a constant, a local, a product…). */
export const addTo = (local: number, ...value: number[]) => [...get(local), ...value, i32.add, ...set(local)];
/** counter += step (an i32 expression); loop again while it is below local `end` (the end of a LOOP body). */
export const advanceBelow = (counter: number, end: number, ...step: number[]) => [...get(counter), ...step, i32.add, i32.tee, counter, ...get(end), i32.ltS, ...BR_IF_LOOP];
/** counter −= by; loop again while it is still above 0 (the end of a LOOP body). */
export const countdown = (counter: number, by = 1) => [...get(counter), ...i32const(by), i32.sub, i32.tee, counter, ...i32const(0), i32.gtS, ...BR_IF_LOOP];

export function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}
export const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
export const name = (s: string) => [...uleb(s.length), ...Buffer.from(s, 'utf8')];

/** A function's entry in the code section: its size, its locals ([count, type] runs), the body, end. */
export function functionCode(locals: number[][], body: number[]): number[] {
  const code = [...vec(locals), ...body, END];
  return [...uleb(code.length), ...code];
}

/** The module: magic, version 1, then the sections in id order. */
export function moduleBytes(...sections: number[][]): Uint8Array {
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...sections.flat()]);
}

/** The global WebAssembly object (this project's TypeScript libs do not declare it). */
export const webAssembly = (globalThis as unknown as {
  WebAssembly: {Module: new (bytes: Uint8Array) => object; Instance: new (module: object, imports?: object) => {exports: unknown}};
}).WebAssembly;
