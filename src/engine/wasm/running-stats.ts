/**
 * DtrainRunningStats for the wasm and cpu backends: PyTorch's BatchNorm running-stat update,
 * mean' = mean·(1 − m) + batchMean·m and var' = var·(1 − m) + batchVar·(M/(M − 1))·m, as one kernel
 * instead of seven float32 tf ops per BatchNorm (~450 kernel dispatches per ShuffleNetV2 step).
 * Each operation is rounded to float32 as those ops round it, so the result is bit for bit theirs.
 */
import type {KernelConfig} from '@tensorflow/tfjs-core';

import {cpuAndWasmConfigs, runF32Kernel} from './kernel-utils.js';

export const RUNNING_STATS = 'DtrainRunningStats';

/** Writes the updated running mean and variance; `unbias` is M/(M − 1), `momentum` m. */
export function updateRunningStatsF32(runningMean: Float32Array, runningVar: Float32Array, mean: Float32Array, variance: Float32Array,
  unbias: number, momentum: number, newMean: Float32Array, newVar: Float32Array): void {
  const round = Math.fround;
  // The tf ops take these scalars as float32 tensors.
  const keep = round(1 - momentum);
  const m = round(momentum);
  const u = round(unbias);
  for (let c = 0; c < mean.length; c++) {
    newMean[c] = round(runningMean[c] * keep) + round(mean[c] * m);
    newVar[c] = round(runningVar[c] * keep) + round(round(variance[c] * u) * m);
  }
}

export const runningStatsConfigs: KernelConfig[] = cpuAndWasmConfigs(RUNNING_STATS, (backendName, {inputs, backend, attrs}) => {
  const {runningMean, runningVar, mean, variance} = inputs;
  const channels = mean.shape[0];
  if ([runningMean, runningVar, mean, variance].some((v) => v.shape.length !== 1 || v.shape[0] !== channels)) {
    throw new Error(`${RUNNING_STATS}: need four vectors of one length, got [${runningMean.shape}], [${runningVar.shape}], [${mean.shape}], [${variance.shape}]`);
  }
  const {unbias, momentum} = attrs as {unbias: number; momentum: number};
  return runF32Kernel(backendName, backend, [runningMean, runningVar, mean, variance], [[channels], [channels]],
    ([rm, rv, m, v], [nm, nv]) => updateRunningStatsF32(rm, rv, m, v, unbias, momentum, nm, nv));
});
