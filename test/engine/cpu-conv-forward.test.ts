/**
 * dtrain's float64-accumulating cpu forward convolutions against a float64 reference in plain JS
 * (they must round it exactly once) and against wasm's XNNPACK convolutions.
 */
import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {initBackend} from '../../src/engine/backend.js';
import {normalArray, relL2} from './compare.js';

interface Case {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  stride: number;
  pad: number | 'same' | 'valid';
  depthwise: boolean;
}

const CASES: Case[] = [
  {x: [2, 7, 5, 3], filter: [3, 3, 3, 4], stride: 1, pad: 1, depthwise: false},
  {x: [1, 8, 8, 5], filter: [3, 3, 5, 6], stride: 2, pad: 1, depthwise: false},
  {x: [3, 6, 6, 8], filter: [1, 1, 8, 7], stride: 1, pad: 'valid', depthwise: false},
  {x: [2, 9, 7, 4], filter: [3, 3, 4, 2], stride: 1, pad: 'same', depthwise: true},
  {x: [1, 8, 8, 6], filter: [3, 3, 6, 1], stride: 2, pad: 1, depthwise: true},
];

/** Float64 reference: explicit symmetric padding from the output size tfjs computes. */
function reference(x: Float32Array, w: Float32Array, c: Case, outShape: number[]): Float64Array {
  const [n, h, wd, cin] = c.x;
  const [kh, kw, , m] = c.filter;
  const [, oh, ow, cout] = outShape;
  const padTop = c.pad === 'valid' ? 0 : c.pad === 'same' ? Math.floor(Math.max((oh - 1) * c.stride + kh - h, 0) / 2) : c.pad;
  const padLeft = c.pad === 'valid' ? 0 : c.pad === 'same' ? Math.floor(Math.max((ow - 1) * c.stride + kw - wd, 0) / 2) : c.pad;
  const y = new Float64Array(n * oh * ow * cout);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let d = 0; d < cout; d++) {
          let s = 0;
          for (let i = 0; i < kh; i++)
            for (let j = 0; j < kw; j++) {
              const iy = oy * c.stride - padTop + i;
              const ix = ox * c.stride - padLeft + j;
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              if (c.depthwise) {
                const ch = Math.floor(d / m);
                s += x[((b * h + iy) * wd + ix) * cin + ch] * w[((i * kw + j) * cin + ch) * m + (d % m)];
              } else {
                for (let ch = 0; ch < cin; ch++) s += x[((b * h + iy) * wd + ix) * cin + ch] * w[((i * kw + j) * cin + ch) * cout + d];
              }
            }
          y[((b * oh + oy) * ow + ox) * cout + d] = s;
        }
  return y;
}

async function forward(backend: 'cpu' | 'wasm', c: Case, seed: number): Promise<{y: Float32Array; shape: number[]; x: Float32Array; w: Float32Array}> {
  await initBackend(backend);
  const x = normalArray(tf.util.sizeFromShape(c.x), seed);
  const w = normalArray(tf.util.sizeFromShape(c.filter), seed + 1);
  const xs = tf.tensor4d(x, c.x);
  const ws = tf.tensor4d(w, c.filter);
  const ys = c.depthwise ? tf.depthwiseConv2d(xs, ws, c.stride, c.pad) : tf.conv2d(xs, ws, c.stride, c.pad);
  const y = (await ys.data()) as Float32Array;
  tf.dispose([xs, ws, ys]);
  return {y, shape: ys.shape, x, w};
}

test('cpu forward convolutions equal the float64 sum rounded once, and agree with wasm', async () => {
  for (const [i, c] of CASES.entries()) {
    const cpu = await forward('cpu', c, 10 * i);
    const exact = reference(cpu.x, cpu.w, c, cpu.shape);
    exact.forEach((v, k) => assert.equal(cpu.y[k], Math.fround(v), `case ${i} element ${k}`));
    const wasm = await forward('wasm', c, 10 * i);
    assert.deepEqual(wasm.shape, cpu.shape);
    assert.ok(relL2(wasm.y, cpu.y) < 1e-6, `case ${i}: wasm vs cpu ${relL2(wasm.y, cpu.y)}`);
  }
});
