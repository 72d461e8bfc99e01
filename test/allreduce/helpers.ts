/** Shared by the all-reduce tests: deterministic inputs, the float64 reference, tolerances. */
import assert from 'node:assert/strict';
import net from 'node:net';

import {Random} from '../../src/util/random.js';

/** Uniform in [−1, 1), a different stream per (seed, rank). */
export function randomVector(length: number, seed: number, rank: number): Float32Array {
  const rng = new Random(seed * 7919 + rank * 104729 + 1);
  return Float32Array.from({length}, () => rng.uniform(-1, 1));
}

export function mean64(inputs: Float32Array[]): Float64Array {
  const out = new Float64Array(inputs[0]?.length ?? 0);
  for (const x of inputs) for (let i = 0; i < out.length; i++) out[i] += x[i];
  for (let i = 0; i < out.length; i++) out[i] /= inputs.length;
  return out;
}

/**
 * Within float32 rounding of the exact mean: inputs in [−1, 1), N−1 additions of partial sums below N
 * in magnitude (each off by at most half an ulp, 2^−24·N) and one division.
 */
export function assertMeanClose(got: Float32Array, want: Float64Array, worldSize: number): void {
  assert.equal(got.length, want.length);
  const tol = worldSize * worldSize * 2 ** -24 + 2 ** -24;
  for (let i = 0; i < got.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol)) assert.fail(`element ${i}: ${got[i]} vs exact mean ${want[i]} (tolerance ${tol})`);
  }
}

/** Bit for bit the float64 mean rounded once to float32: what the ring gives with float64 partial sums, in any ring order. */
export function assertExactMean(got: Float32Array, inputs: Float32Array[]): void {
  const want = Float32Array.from(mean64(inputs));
  for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want[i])) assert.fail(`element ${i}: ${got[i]} vs exactly rounded mean ${want[i]}`);
  assert.equal(got.length, want.length);
}

export function assertBitwiseEqual(results: Float32Array[]): void {
  const first = Buffer.from(results[0].buffer, results[0].byteOffset, results[0].byteLength);
  results.forEach((r, rank) => assert.ok(first.equals(Buffer.from(r.buffer, r.byteOffset, r.byteLength)), `rank ${rank} differs bitwise from rank 0`));
}

/** A loopback port nobody listens on (one the OS just gave out and took back). */
export async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const {port} = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A loopback endpoint nobody listens on. */
export async function deadEndpoint(): Promise<string> {
  return `tcp://127.0.0.1:${await freeLoopbackPort()}`;
}
