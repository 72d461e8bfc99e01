/**
 * webgpu's --precision exact convolutions (src/engine/webgpu/exact-conv.ts) against float64 sums
 * computed here: forward, input gradient and filter gradient, dense and depthwise, strided and
 * padded. Each output must be the float32 nearest the exact sum (measured: all of them are).
 */
import assert from 'node:assert/strict';
import {after, test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {initBackend} from '../../src/engine/backend.js';
import {applyPrecision} from '../../src/engine/precision.js';
import {releaseWebGpu} from '../../src/engine/webgpu.js';
import {normalArray} from '../engine/compare.js';
import {requireAdapter, skip} from './adapter.js';

after(() => releaseWebGpu());

interface Case {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  stride: number;
  pad: 'same' | 'valid';
  depthwise: boolean;
}

const CASES: Case[] = [
  {name: 'dense 3×3 stride 2 same', x: [2, 9, 9, 5], filter: [3, 3, 5, 6], stride: 2, pad: 'same', depthwise: false},
  // 1024 terms per filter-gradient sum, 40 per forward sum.
  {name: 'dense 1×1', x: [4, 16, 16, 40], filter: [1, 1, 40, 24], stride: 1, pad: 'valid', depthwise: false},
  {name: 'depthwise 3×3 stride 1 same', x: [2, 8, 8, 12], filter: [3, 3, 12, 1], stride: 1, pad: 'same', depthwise: true},
  {name: 'depthwise 3×3 stride 2 valid, multiplier 2', x: [2, 9, 9, 4], filter: [3, 3, 4, 2], stride: 2, pad: 'valid', depthwise: true},
];

/** y = conv(x, w), and for the loss Σ y·dy: dx and dW, all summed in float64. */
function reference(x: Float32Array, w: Float32Array, dy: Float32Array, c: Case, outShape: number[]) {
  const [batch, inH, inW, inC] = c.x;
  const [kH, kW, , perIn] = c.filter;
  const [, outH, outW, outC] = outShape;
  const padTop = c.pad === 'same' ? Math.max(0, Math.floor(((outH - 1) * c.stride + kH - inH) / 2)) : 0;
  const padLeft = c.pad === 'same' ? Math.max(0, Math.floor(((outW - 1) * c.stride + kW - inW) / 2)) : 0;
  const y = new Float64Array(batch * outH * outW * outC);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  for (let b = 0; b < batch; b++)
    for (let oy = 0; oy < outH; oy++)
      for (let ox = 0; ox < outW; ox++)
        for (let kh = 0; kh < kH; kh++)
          for (let kw = 0; kw < kW; kw++) {
            const iy = oy * c.stride - padTop + kh;
            const ix = ox * c.stride - padLeft + kw;
            if (iy < 0 || iy >= inH || ix < 0 || ix >= inW) continue;
            for (let ci = 0; ci < inC; ci++) {
              const xi = ((b * inH + iy) * inW + ix) * inC + ci;
              for (let q = 0; q < (c.depthwise ? perIn : outC); q++) {
                const d = c.depthwise ? ci * perIn + q : q;
                const wi = ((kh * kW + kw) * inC + ci) * perIn + q;
                const yi = ((b * outH + oy) * outW + ox) * outC + d;
                y[yi] += x[xi] * w[wi];
                dx[xi] += dy[yi] * w[wi];
                dw[wi] += x[xi] * dy[yi];
              }
            }
          }
  return {y, dx, dw};
}

/** Share of elements that are the float32 nearest the exact value, and the worst error in ulps of it. */
function rounding(got: Float32Array, exact: Float64Array): {nearest: number; worstUlps: number} {
  let nearest = 0;
  let worstUlps = 0;
  for (let i = 0; i < exact.length; i++) {
    const want = Math.fround(exact[i]);
    if (got[i] === want) nearest++;
    const ulp = Math.max(Math.abs(want) * 2 ** -23, 2 ** -126);
    worstUlps = Math.max(worstUlps, Math.abs(got[i] - exact[i]) / ulp);
  }
  return {nearest: nearest / exact.length, worstUlps};
}

async function run(c: Case, xv: Float32Array, wv: Float32Array, dyv: Float32Array) {
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, c.x);
    const w = tf.tensor4d(wv, c.filter);
    const conv = (a: tf.Tensor4D, f: tf.Tensor4D) => (c.depthwise ? tf.depthwiseConv2d(a, f, c.stride, c.pad) : tf.conv2d(a, f, c.stride, c.pad));
    const y = conv(x, w);
    const dy = tf.tensor(dyv, y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, f: tf.Tensor) => conv(a as tf.Tensor4D, f as tf.Tensor4D).mul(dy).sum())([x, w]);
    return [y, dx, dw];
  });
}

for (const c of CASES) {
  test(`webgpu exact convolution, ${c.name}: forward, dx and dW are float64 sums rounded once`, {skip, timeout: 120_000}, async () => {
    requireAdapter();
    await initBackend('webgpu');
    const xv = normalArray(c.x.reduce((a, b) => a * b), 1);
    const wv = normalArray(c.filter.reduce((a, b) => a * b), 2);
    const outShape = tf.tidy(() => (c.depthwise ? tf.depthwiseConv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.filter) as tf.Tensor4D, c.stride, c.pad) : tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.filter) as tf.Tensor4D, c.stride, c.pad)).shape);
    const dyv = normalArray(outShape.reduce((a, b) => a * b), 3);
    const want = reference(xv, wv, dyv, c, outShape);
    const measure = async (precision: 'fast' | 'exact') => {
      applyPrecision('webgpu', precision);
      const outs = await run(c, xv, wv, dyv);
      const got = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
      tf.dispose(outs);
      return [rounding(got[0], want.y), rounding(got[1], want.dx), rounding(got[2], want.dw)];
    };
    const before = tf.memory().numTensors;
    try {
      const fast = await measure('fast');
      const exact = await measure('exact');
      const show = (r: {nearest: number; worstUlps: number}[]) => r.map((m, i) => `${['y', 'dx', 'dW'][i]} ${(100 * m.nearest).toFixed(1)}% nearest, ≤ ${m.worstUlps.toFixed(2)} ulp`).join('; ');
      console.log(`${c.name}: fast ${show(fast)}\n${' '.repeat(c.name.length)}  exact ${show(exact)}`);
      exact.forEach((m, i) => {
        assert.ok(m.nearest >= 0.999, `${['y', 'dx', 'dW'][i]}: only ${m.nearest} nearest`);
        assert.ok(m.worstUlps <= 0.51, `${['y', 'dx', 'dW'][i]}: ${m.worstUlps} ulp`);
      });
    } finally {
      applyPrecision('webgpu', 'fast');
    }
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  });
}
