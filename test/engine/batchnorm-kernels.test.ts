/**
 * The fused BatchNorm kernels (wasm and cpu) and their tf-op fallbacks against a float64 reference
 * in plain JS, their use inside tf.customGrad, and that they keep no tensors.
 */
import assert from 'node:assert/strict';
import {test} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';

import {
  BATCH_MOMENTS, BATCH_NORM_FORWARD, BATCH_NORM_GRAD, BATCH_NORM_TRAIN_FORWARD, batchMoments, batchMomentsOps, batchNormForward, batchNormForwardOps, batchNormGrad,
  batchNormGradOps, batchNormTrainForward, batchNormTrainForwardOps, RUNNING_STATS, runningStats, runningStatsOps,
} from '../../src/engine/batchnorm-kernels.js';
import {batchNormBackward} from '../../src/engine/wasm/batchnorm-grad.js';
import {maxRelErr, normalArray, relL2} from './compare.js';

type Shape = [number, number, number, number];

/** Float64 reference of the moments of x viewed as [M, C]. */
function refMoments(x: Float32Array, [n, h, w, C]: Shape): {mean: Float64Array; variance: Float64Array} {
  const M = n * h * w;
  const mean = new Float64Array(C);
  const variance = new Float64Array(C);
  for (let i = 0; i < x.length; i++) mean[i % C] += x[i] / M;
  for (let i = 0; i < x.length; i++) variance[i % C] += (x[i] - mean[i % C]) ** 2 / M;
  return {mean, variance};
}

/** Float64 reference of the BatchNorm backward, straight from the formula. */
function refGrad(dy: Float32Array, xhat: Float32Array, scale: Float32Array, [n, h, w, C]: Shape): {dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array} {
  const M = n * h * w;
  const dbeta = new Float64Array(C);
  const dgamma = new Float64Array(C);
  for (let i = 0; i < dy.length; i++) {
    dbeta[i % C] += dy[i];
    dgamma[i % C] += dy[i] * xhat[i];
  }
  const dx = new Float64Array(dy.length);
  for (let i = 0; i < dy.length; i++) {
    const c = i % C;
    dx[i] = (scale[c] / M) * (M * dy[i] - dbeta[c] - xhat[i] * dgamma[c]);
  }
  return {dx, dgamma, dbeta};
}

/**
 * The JS loops' shape (6 channels), and one for wasm's SIMD sums: 20 channels (a block of 8, then
 * a one-vector tail) over 396 rows (several row blocks).
 */
const CASES = [[3, 5, 7, 6], [4, 9, 11, 20]].map((shape) => {
  const [M, C] = [shape[0] * shape[1] * shape[2], shape[3]];
  return {
    shape: shape as Shape,
    // Channel means far from 0 relative to their spread: E[x²]−E[x]² or float32 sums would lose digits.
    x: normalArray(M * C, 1, 0, 1).map((v, i) => 300 + (i % C) * 50 + 0.01 * v),
    dy: normalArray(M * C, 2),
    xhat: normalArray(M * C, 3),
    scale: normalArray(C, 4, 1, 0.5),
  };
});
/** The other tests' data. */
const {shape: SHAPE, x: xData, dy: dyData, xhat: xhatData, scale: scaleData} = CASES[0];
const C = SHAPE[3];

for (const backend of ['cpu', 'wasm']) {
  test(`${backend}: the three kernels are registered`, async () => {
    await tf.setBackend(backend);
    assert.ok(tf.getKernel(BATCH_MOMENTS, backend) !== undefined);
    assert.ok(tf.getKernel(RUNNING_STATS, backend) !== undefined);
    assert.ok(tf.getKernel(BATCH_NORM_GRAD, backend) !== undefined);
  });

  // The tf-op path misses these bounds on this data (variance off by 7e-6 on cpu, 8e-5 on wasm), so
  // passing them also shows that the kernels ran.
  for (const {shape, x: xData, dy: dyData, xhat: xhatData, scale: scaleData} of CASES) {
    test(`${backend}: batchMoments matches a float64 reference to float32 rounding, [${shape}]`, async (t) => {
      await tf.setBackend(backend);
      const x = tf.tensor4d(xData, shape);
      const [mean, variance] = batchMoments(x);
      const ref = refMoments(xData, shape);
      assert.deepEqual(mean.shape, [shape[3]]);
      assert.deepEqual(variance.shape, [shape[3]]);
      const errMean = maxRelErr(await mean.data(), ref.mean, 0);
      const errVar = maxRelErr(await variance.data(), ref.variance, 0);
      t.diagnostic(`max relative error: mean ${errMean.toExponential(2)}, variance ${errVar.toExponential(2)}`);
      assert.ok(errMean < 1e-7, `mean ${errMean}`);
      assert.ok(errVar < 1e-7, `variance ${errVar}`);
      tf.dispose([x, mean, variance]);
    });

    test(`${backend}: batchNormGrad matches a float64 reference, [${shape}]`, async (t) => {
      await tf.setBackend(backend);
      const dy = tf.tensor4d(dyData, shape);
      const xhat = tf.tensor4d(xhatData, shape);
      const scale = tf.tensor1d(scaleData);
      const [dx, dgamma, dbeta] = batchNormGrad(dy, xhat, scale);
      const ref = refGrad(dyData, xhatData, scaleData, shape);
      assert.deepEqual(dx.shape, shape);
      const errs = [relL2(await dx.data(), ref.dx), maxRelErr(await dgamma.data(), ref.dgamma, 0), maxRelErr(await dbeta.data(), ref.dbeta, 0)];
      t.diagnostic(`dx relL2 ${errs[0]!.toExponential(2)}, dgamma max rel ${errs[1]!.toExponential(2)}, dbeta max rel ${errs[2]!.toExponential(2)}`);
      for (const err of errs) assert.ok(err < 1e-7, `error ${err}`);
      tf.dispose([dy, xhat, scale, dx, dgamma, dbeta]);
    });
  }

  // Bit for bit: the kernel rounds each operation to float32 as the seven ops do. 256 channels,
  // because a product taken in float64 instead (var·(M/(M−1))·m in one step) is one ulp off for 7
  // of them and fails this.
  test(`${backend}: runningStats equals its tf ops bit for bit, and is the formula`, async () => {
    await tf.setBackend(backend);
    const vectors = [normalArray(256, 11, 0.3, 1), normalArray(256, 12, 2, 0.5), normalArray(256, 13, -1, 2), normalArray(256, 14, 3, 1)];
    const [rm, rv, m, v] = vectors.map((data) => tf.tensor1d(data));
    const count = 7;
    const before = tf.memory().numTensors;
    const got = runningStats(rm, rv, m, v, count, 0.1);
    const want = runningStatsOps(rm, rv, m, v, count, 0.1);
    assert.equal(tf.memory().numTensors, before + 4);
    for (let i = 0; i < 2; i++) assert.deepEqual(await got[i].data(), await want[i].data());
    const [rmD, rvD, mD, vD] = vectors;
    assert.ok(maxRelErr(await got[0].data(), Array.from(mD, (x, c) => 0.9 * rmD[c] + 0.1 * x), 0) < 1e-6);
    assert.ok(maxRelErr(await got[1].data(), Array.from(vD, (x, c) => 0.9 * rvD[c] + 0.1 * x * (count / (count - 1))), 0) < 1e-6);
    tf.dispose([rm, rv, m, v, ...got, ...want]);
  });

  test(`${backend}: the tf-op fallbacks compute the same`, async () => {
    await tf.setBackend(backend);
    // A modest offset: the ops accumulate in float32 on these backends.
    const x = tf.tensor4d(xhatData.map((v, i) => 2 + (i % C) + v), SHAPE);
    const [mean, variance] = batchMomentsOps(x);
    const [kMean, kVariance] = batchMoments(x);
    assert.ok(relL2(await mean.data(), await kMean.data()) < 1e-5);
    assert.ok(relL2(await variance.data(), await kVariance.data()) < 1e-5);
    const dy = tf.tensor4d(dyData, SHAPE);
    const xhat = tf.tensor4d(xhatData, SHAPE);
    const scale = tf.tensor1d(scaleData);
    const ops = batchNormGradOps(dy, xhat, scale);
    const ref = refGrad(dyData, xhatData, scaleData, SHAPE);
    assert.ok(relL2(await ops[0].data(), ref.dx) < 1e-5);
    assert.ok(relL2(await ops[1].data(), ref.dgamma) < 1e-5);
    assert.ok(relL2(await ops[2].data(), ref.dbeta) < 1e-5);
    tf.dispose([x, mean, variance, kMean, kVariance, dy, xhat, scale, ...ops]);
  });

  test(`${backend}: repeated calls, inside tidy or not, keep no tensors and no backend buffers (JS and SIMD shapes)`, async () => {
    await tf.setBackend(backend);
    const buffers = () => (tf.backend() as unknown as {numDataIds(): number}).numDataIds();
    for (const {shape, x: data, scale: scaleValues} of CASES) {
      const x = tf.tensor4d(data, shape);
      const scale = tf.tensor1d(scaleValues);
      const before = tf.memory().numTensors;
      const buffersBefore = buffers();
      for (let i = 0; i < 5; i++) {
        tf.tidy(() => {
          const [mean, variance] = batchMoments(x);
          const xhat = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))) as tf.Tensor4D;
          return batchNormGrad(x, xhat, scale)[0];
        }).dispose();
        const outs = [...batchMoments(x), ...batchNormGrad(x, x, scale)];
        assert.equal(tf.memory().numTensors, before + 5);
        tf.dispose(outs);
      }
      assert.equal(tf.memory().numTensors, before);
      assert.equal(buffers(), buffersBefore, `[${shape}]: every scratch buffer freed`);
      tf.dispose([x, scale]);
    }
  });

  test(`${backend}: a customGrad BatchNorm built on the kernels has autodiff's gradients`, async () => {
    await tf.setBackend(backend);
    const eps = 1e-5;
    const bnKernels = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [x, gamma, beta] = args as tf.Tensor[];
      const save = args[3] as tf.GradSaveFunc;
      const [mean, variance] = batchMoments(x as tf.Tensor4D);
      const invStd = tf.rsqrt(tf.add(variance, eps));
      const xhat = tf.mul(tf.sub(x!, mean), invStd);
      save([xhat, tf.mul(gamma!, invStd)]);
      return {
        value: tf.add(tf.mul(xhat, gamma!), beta!),
        gradFunc: (dy, [savedXhat, scale]) => batchNormGrad(dy as tf.Tensor4D, savedXhat as tf.Tensor4D, scale as tf.Tensor1D),
      };
    });
    const bnOps = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => {
      const {mean, variance} = tf.moments(x, [0, 1, 2]);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), gamma), beta);
    };
    const x = tf.tensor4d(xhatData.map((v, i) => v * (1 + (i % C)) + (i % C)), SHAPE);
    const gamma = tf.tensor1d(scaleData);
    const beta = tf.tensor1d(normalArray(C, 5));
    const dy = tf.tensor4d(dyData, SHAPE);
    // Both sides as loss = Σ dy·bn(...) so that the gradients are comparable.
    const loss = (bn: (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(bn(a, b, c), dy));
    const got = tf.grads(loss(bnKernels as (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor))([x, gamma, beta]);
    const want = tf.grads(loss(bnOps))([x, gamma, beta]);
    for (let i = 0; i < 3; i++) {
      const err = relL2(await got[i]!.data(), await want[i]!.data());
      assert.ok(err < 1e-4, `gradient ${i}: relative L2 ${err}`);
    }
    tf.dispose([x, gamma, beta, dy, ...got, ...want]);
  });
}

test('wasm: the one-pass BatchNorm forward gives the four tf ops\' y and x̂ bit for bit, and keeps no tensors', async () => {
  await tf.setBackend('wasm');
  assert.ok(tf.getKernel(BATCH_NORM_FORWARD, 'wasm') !== undefined);
  const [shape, channels] = [[3, 5, 7, 24] as [number, number, number, number], 24];
  const x = tf.tensor4d(normalArray(3 * 5 * 7 * channels, 6, 2, 3), shape);
  const [scale, shift, mean, invStd] = [7, 8, 9, 10].map((seed) => tf.tensor1d(normalArray(channels, seed, 0.5, 1)));
  const before = tf.memory().numTensors;
  const [y, xhat] = batchNormForward(x, scale, shift, mean, invStd);
  assert.equal(tf.memory().numTensors, before + 2, 'two outputs, nothing else');
  const [yOps, xhatOps] = batchNormForwardOps(x, scale, shift, mean, invStd);
  assert.deepEqual(await y.data(), await yOps.data());
  assert.deepEqual(await xhat.data(), await xhatOps.data());
  // 6 channels: not a multiple of 4, so the tf ops run (same values, by the same ops).
  const odd = tf.tensor4d(xData, SHAPE);
  const [oddScale, oddShift, oddMean, oddInvStd] = [7, 8, 9, 10].map((seed) => tf.tensor1d(normalArray(C, seed)));
  const [yOdd] = batchNormForward(odd, oddScale, oddShift, oddMean, oddInvStd);
  const yOddOps = tf.tidy(() => tf.add(tf.mul(odd, oddScale), oddShift));
  assert.deepEqual(await yOdd.data(), await yOddOps.data());
  tf.dispose([x, scale, shift, mean, invStd, y, xhat, yOps, xhatOps, odd, oddScale, oddShift, oddMean, oddInvStd, yOdd, yOddOps]);
});

// The SIMD sums add the same float64 terms in another order; rounded to float32, every value here equals the JS loops'.
test('wasm: the BatchNorm backward with its SIMD sums and dx pass gives the JS loops\' dx, dγ and dβ bit for bit', async () => {
  await tf.setBackend('wasm');
  const channels = 24;
  const shape: [number, number, number, number] = [3, 5, 7, channels];
  const size = 3 * 5 * 7 * channels;
  const [dyData, xhatData, scaleData] = [normalArray(size, 11), normalArray(size, 12), normalArray(channels, 13, 1, 0.5)];
  const want = {dx: new Float32Array(size), dgamma: new Float32Array(channels), dbeta: new Float32Array(channels)};
  batchNormBackward(dyData, xhatData, scaleData, want.dx, want.dgamma, want.dbeta);
  const [dy, xhat, scale] = [tf.tensor4d(dyData, shape), tf.tensor4d(xhatData, shape), tf.tensor1d(scaleData)];
  const before = tf.memory().numTensors;
  const got = batchNormGrad(dy, xhat, scale);
  assert.equal(tf.memory().numTensors, before + 3, 'three outputs, nothing else (the float64 factors freed)');
  assert.deepEqual(await got[0].data(), want.dx);
  assert.deepEqual(await got[1].data(), want.dgamma);
  assert.deepEqual(await got[2].data(), want.dbeta);
  tf.dispose([dy, xhat, scale, ...got]);
});

test('wasm: the whole training forward in one kernel gives the seven kernels\' y, x̂, scale, mean and variance bit for bit, and keeps nothing', async () => {
  await tf.setBackend('wasm');
  assert.ok(tf.getKernel(BATCH_NORM_TRAIN_FORWARD, 'wasm') !== undefined);
  const buffers = () => (tf.backend() as unknown as {numDataIds(): number}).numDataIds();
  // The 20-channel case (means far from 0), a model-like one, and one of γ near 0 and β large.
  const cases = [CASES[1], {shape: [8, 8, 8, 24] as Shape, x: normalArray(8 * 8 * 8 * 24, 21, 0.3, 2), scale: normalArray(24, 22, 1, 0.5)}];
  for (const [k, {shape, x: data, scale: gammaData}] of cases.entries()) {
    const x = tf.tensor4d(data, shape);
    const gamma = tf.tensor1d(k === 0 ? gammaData : gammaData.map((g) => g * 1e-3));
    const beta = tf.tensor1d(normalArray(shape[3], 23, k === 0 ? 0 : 40, 1));
    const before = [tf.memory().numTensors, buffers()];
    const got = batchNormTrainForward(x, gamma, beta, 1e-5);
    assert.equal(tf.memory().numTensors, before[0] + 5, 'five outputs, nothing else');
    const want = batchNormTrainForwardOps(x, gamma, beta, 1e-5);
    for (const [i, what] of ['y', 'x̂', 'scale', 'mean', 'variance'].entries()) {
      assert.deepEqual(await got[i].data(), await want[i].data(), `[${shape}]: ${what}`);
    }
    tf.dispose([...got, ...want]);
    assert.deepEqual([tf.memory().numTensors, buffers()], before, 'no tensor and no scratch buffer left');
    tf.dispose([x, gamma, beta]);
  }
});
