import * as tf from '@tensorflow/tfjs-core';

import {median} from './stats.js';

export interface GemmPeakResult {
  /** Square matrices n × n times n × n. */
  n: number;
  reps: number;
  msMedian: number;
  /** 2n³ FLOP over the median time: the backend's dense matmul ceiling on this machine. */
  gflopsPerSec: number;
}

/**
 * The backend's GEMM peak: a large square tf.matMul timed after warm-up (reading the result back
 * ends each timing, so it covers the work on any backend). The training step's GFLOP/s against
 * this says how much of the machine's usable arithmetic the model's kernels reach.
 */
export async function benchGemmPeak(n = 1024, reps = 5, warmup = 2): Promise<GemmPeakResult> {
  const a = tf.randomUniform([n, n], -1, 1, 'float32', 1);
  const b = tf.randomUniform([n, n], -1, 1, 'float32', 2);
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + reps; i++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      await c.data();
      const ms = performance.now() - t0;
      c.dispose();
      if (i >= warmup) times.push(ms);
    }
  } finally {
    tf.dispose([a, b]);
  }
  const msMedian = median(times);
  return {n, reps, msMedian, gflopsPerSec: (2 * n ** 3) / (msMedian * 1e6)};
}
