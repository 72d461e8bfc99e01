/**
 * WGSL for sums as exact as the cpu backend's float64 ones, in a language without float64: each
 * product a·b is split exactly into p + e (Dekker's TwoProduct: 12-bit halves multiply without
 * rounding) and each addition into s + e (Knuth's TwoSum); the rounding errors are carried in a
 * second float32. The result, hi + lo, is the float32 nearest the exact sum in all but the rarest
 * cases (test/webgpu measures it).
 *
 * Shader compilers may rewrite float expressions as if they were real numbers ((a + b) − a → b),
 * which turns every error term into 0; lavapipe's does. `opaque` hides a value behind an XOR with a
 * uniform that is always 0, so the compiler cannot see through it. `fma` is no way out: with an
 * fma-based TwoProduct, 138 of 256 dot products of 8192 terms came out of lavapipe not correctly
 * rounded; with Dekker's, none.
 *
 * Needs a `zero : u32` uniform (always 0).
 */
export const DOUBLE_FLOAT_WGSL = `
  fn opaque(v : f32) -> f32 { return bitcast<f32>(bitcast<u32>(v) ^ uniforms.zero); }

  // a = hi + lo with hi holding the upper 12 bits of a's 24-bit significand.
  fn splitF32(a : f32) -> vec2<f32> {
    let c = opaque(4097.0 * a);
    let hi = opaque(c - (c - a));
    return vec2<f32>(hi, a - hi);
  }

  // acc + a·b, acc = (hi, lo) a double-float.
  fn dfMulAdd(acc : vec2<f32>, a : f32, b : f32) -> vec2<f32> {
    let p = opaque(a * b);
    let aParts = splitF32(a);
    let bParts = splitF32(b);
    let pErr = ((aParts.x * bParts.x - p) + aParts.x * bParts.y + aParts.y * bParts.x) + aParts.y * bParts.y;
    let s = opaque(acc.x + p);
    let bb = opaque(s - acc.x);
    let sErr = (acc.x - (s - bb)) + (p - bb);
    return vec2<f32>(s, acc.y + (sErr + pErr));
  }
`;

/** The uniform value that keeps `opaque` opaque. */
export const ZERO_UNIFORM = {type: 'uint32', data: [0]};
