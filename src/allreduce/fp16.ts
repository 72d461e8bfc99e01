/**
 * IEEE 754 half precision (binary16), for `compression: 'fp16'` rings: what travels between ranks
 * is 2 bytes per value. Node 20 has neither Math.f16round nor Float16Array (only behind flags), so
 * both directions are done here on the bit patterns: arrays in WebAssembly SIMD (fp16-simd.ts),
 * single values in JS with the same arithmetic.
 *
 * - float32 → half rounds to nearest, ties to even; values of magnitude ≥ 65520 (the midpoint above
 *   the largest half, 65504) become ±Infinity; below 2^−14 they become subnormal halves (spacing
 *   2^−24), at or below 2^−25 (a tie, to even) ±0; NaN stays NaN (quiet, its top payload bits
 *   kept), ±Infinity stays ±Infinity, −0 stays −0.
 * - half → float32 is exact (every half is a float32).
 */
import {simdAccumulate, simdDecode, simdEncode} from './fp16-simd.js';

/** The largest finite half. */
export const HALF_MAX = 65504;

const bitsScratch = new Uint32Array(1);
const floatScratch = new Float32Array(bitsScratch.buffer);

/**
 * Half bits of one float32 given by its bit pattern, round to nearest even. After F. Giesen's
 * float_to_half_fast3_rtne: normal results by adding the rounding bias to the rebiased bits (a
 * carry out of the mantissa bumps the exponent, up to Infinity); subnormal ones by a float32
 * addition of 0.5, which rounds the value to the subnormal grid.
 */
export function floatBitsToHalf(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const f = bits & 0x7fffffff;
  if (f < 0x38800000) {
    // Below 2^−14: subnormal or zero (0x400 when it rounds up to the smallest normal).
    bitsScratch[0] = f;
    floatScratch[0] = floatScratch[0] + 0.5;
    return sign | (bitsScratch[0] - 0x3f000000);
  }
  if (f < 0x477ff000) return sign | ((f + 0xc8000fff + ((f >>> 13) & 1)) >>> 13); // rebias 127 → 15, round the 13 dropped bits
  if (f > 0x7f800000) return sign | 0x7e00 | ((f >>> 13) & 0x3ff); // NaN: quiet, top payload bits kept
  return sign | 0x7c00; // ≥ 65520, or Infinity
}

/** The half bits nearest to x once x is rounded to float32 (as a Float32Array store would). */
export function floatToHalf(x: number): number {
  floatScratch[0] = x;
  return floatBitsToHalf(bitsScratch[0]);
}

/** The float32 a half stands for, exactly. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) return mantissa ? Number.NaN : sign * Infinity;
  return exponent === 0 ? sign * mantissa * 2 ** -24 : sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/** out[i] = half(x[i] / divisor) for every i (the division in float32); returns how many finite values became ±Infinity. */
export function encodeHalf(x: Float32Array, out: Uint16Array, divisor = 1): number {
  if (out.length < x.length) throw new RangeError(`encodeHalf: output of ${out.length} for ${x.length} values`);
  return simdEncode(x, out, divisor);
}

/** out[i] = float32(h[i]) for every i (exact); returns how many are ±Infinity or NaN. */
export function decodeHalf(h: Uint16Array, out: Float32Array): number {
  if (out.length < h.length) throw new RangeError(`decodeHalf: output of ${out.length} for ${h.length} values`);
  return simdDecode(h, out);
}

/**
 * h[i] = half(float32(h[i]) + x[i] / divisor) in place, the division and the addition in float32
 * (each rounded once, to nearest even), then rounded to half; returns how many finite values became
 * ±Infinity. What a ring rank does to a partial sum on its way through.
 */
export function accumulateHalf(h: Uint16Array, x: Float32Array, divisor = 1): number {
  if (x.length < h.length) throw new RangeError(`accumulateHalf: ${h.length} halves, ${x.length} addends`);
  return simdAccumulate(h, x, divisor);
}
