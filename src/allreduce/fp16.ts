/**
 * IEEE 754 half precision (binary16) on typed arrays, for `compression: 'fp16'` rings: what travels
 * between ranks is 2 bytes per value. Node 20 has neither Math.f16round nor Float16Array (only behind
 * flags), so both directions are done here on the bit patterns.
 *
 * - float32 → half rounds to nearest, ties to even; values of magnitude ≥ 65520 (the midpoint above
 *   the largest half, 65504) become ±Infinity; below 2^−14 they become subnormal halves (spacing
 *   2^−24), below 2^−25 (ties to even at exactly 2^−25) ±0; NaN stays NaN (quiet, its top payload
 *   bits kept), ±Infinity stays ±Infinity, −0 stays −0.
 * - half → float32 is exact (every half is a float32): one lookup in a 65,536-entry table.
 */

/** The largest finite half. */
export const HALF_MAX = 65504;

/** Every half's float32 bit pattern, indexed by the half's bits (256 KiB, built once). */
const HALF_TO_FLOAT_BITS = buildDecodeTable();

function buildDecodeTable(): Uint32Array {
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    let bits: number;
    if (exponent === 0x1f) {
      bits = 0x7f800000 | (mantissa << 13); // ±Infinity, NaN with its payload
    } else if (exponent !== 0) {
      bits = ((exponent + 112) << 23) | (mantissa << 13); // normal: rebias 15 → 127
    } else if (mantissa === 0) {
      bits = 0;
    } else {
      // Subnormal half m·2^−24: normalise for float32.
      let e = 113; // 127 − 14
      let m = mantissa;
      while ((m & 0x400) === 0) {
        m <<= 1;
        e--;
      }
      bits = (e << 23) | ((m & 0x3ff) << 13);
    }
    table[h] = (sign | bits) >>> 0;
  }
  return table;
}

/** 2^52: adding it to a non-negative double below 2^52 rounds that double to an integer, ties to even. */
const ROUND_TO_INTEGER = 2 ** 52;
/** 2^24: a float32 below 2^−14 times this is its value in units of the smallest subnormal half. */
const SUBNORMAL_UNITS = 2 ** 24;
const bitsScratch = new Uint32Array(1);
const floatScratch = new Float32Array(bitsScratch.buffer);

/**
 * Half bits of one float32 given as its value `v` and bit pattern `bits` (round to nearest even).
 * After F. Giesen's float_to_half_fast3_rtne: normal results by adding the rounding bias to the
 * rebiased bits (a carry out of the mantissa bumps the exponent, up to Infinity); subnormal ones as
 * |v|·2^24 rounded to an integer by the double addition of 2^52 (exact scaling, then one rounding).
 */
function toHalf(v: number, bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const f = bits & 0x7fffffff;
  if (f < 0x38800000) return sign | (Math.abs(v) * SUBNORMAL_UNITS + ROUND_TO_INTEGER - ROUND_TO_INTEGER); // below 2^−14: subnormal or zero (1024 = the smallest normal)
  if (f < 0x47800000) return sign | ((f + 0xc8000fff + ((f >>> 13) & 1)) >>> 13); // rebias 127 → 15, round the 13 dropped bits; [65520, 65536) carries to Infinity
  if (f > 0x7f800000) return sign | 0x7e00 | ((f >>> 13) & 0x3ff); // NaN: quiet, top payload bits kept
  return sign | 0x7c00; // ≥ 65536 or Infinity
}

/** The half bits of a float32 given by its bit pattern. */
export function floatBitsToHalf(bits: number): number {
  bitsScratch[0] = bits;
  return toHalf(floatScratch[0], bits);
}

/** The half bits nearest to x after x is rounded to float32 (as a Float32Array store would). */
export function floatToHalf(x: number): number {
  floatScratch[0] = x;
  return toHalf(floatScratch[0], bitsScratch[0]);
}

/** out[i] = half(x[i]) for every i; returns how many finite values overflowed to ±Infinity (|x| ≥ 65520). */
export function encodeHalf(x: Float32Array, out: Uint16Array): number {
  if (out.length < x.length) throw new RangeError(`encodeHalf: output of ${out.length} for ${x.length} values`);
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  let overflowed = 0;
  for (let i = 0; i < x.length; i++) {
    const b = bits[i];
    const h = toHalf(x[i], b);
    out[i] = h;
    if ((h & 0x7fff) === 0x7c00 && (b & 0x7fffffff) !== 0x7f800000) overflowed++;
  }
  return overflowed;
}

/** out[i] = float32(h[i]) for every i (exact). */
export function decodeHalf(h: Uint16Array, out: Float32Array): void {
  if (out.length < h.length) throw new RangeError(`decodeHalf: output of ${out.length} for ${h.length} values`);
  const bits = new Uint32Array(out.buffer, out.byteOffset, h.length);
  for (let i = 0; i < h.length; i++) bits[i] = HALF_TO_FLOAT_BITS[h[i]];
}

/** The float32 a half stands for (tests, one-off uses); decodeHalf for arrays. */
export function halfToFloat(h: number): number {
  bitsScratch[0] = HALF_TO_FLOAT_BITS[h & 0xffff];
  return floatScratch[0];
}

/** Half values as float32 (reads of the bit table; NaN payloads may not survive a float round trip, which sums do not need). */
const HALF_TO_FLOAT = new Float32Array(HALF_TO_FLOAT_BITS.buffer);

/**
 * out[i] = float32(h[i]) + x[i] / divisor, computed in double and rounded once to float32 by the
 * store (with divisor 1 the sum of a half and a float32 is exact in double but for exponent spreads
 * beyond 29 binary orders). `out` may be `x`.
 */
export function addHalf(h: Uint16Array, x: Float32Array, out: Float32Array, divisor = 1): void {
  if (x.length < h.length || out.length < h.length) throw new RangeError(`addHalf: ${h.length} halves, ${x.length} addends, output of ${out.length}`);
  if (divisor === 1) for (let i = 0; i < h.length; i++) out[i] = HALF_TO_FLOAT[h[i]] + x[i];
  else for (let i = 0; i < h.length; i++) out[i] = HALF_TO_FLOAT[h[i]] + x[i] / divisor;
}
