import {execFile} from 'node:child_process';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

import type {MeanReducer} from '../../src/worker/replica.js';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bin/run.js');

/** The built CLI as a child process (needs dist/); never rejects: the exit code is part of the result. */
export function runDtrain(args: string[], options: {cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number}): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], {cwd: options.cwd, env: {...process.env, ...options.env}, timeout: options.timeoutMs ?? 120_000}, (error, stdout, stderr) => {
      resolve({code: error ? ((error as {code?: number}).code ?? 1) : 0, stdout, stderr});
    });
  });
}

/** N in-process reducers that compute the exact elementwise mean (float64 sum, one rounding). */
export function exactMeanReducers(worldSize: number): MeanReducer[] {
  let pending: Array<{data: Float32Array; resolve: (v: Float32Array) => void}> = [];
  const reducers = Array.from({length: worldSize}, () => ({
    allReduceMean: (data: Float32Array) =>
      new Promise<Float32Array>((resolve) => {
        pending.push({data, resolve});
        if (pending.length === worldSize) {
          const out = new Float32Array(data.length);
          for (let i = 0; i < out.length; i++) {
            let s = 0;
            for (const p of pending) s += p.data[i];
            out[i] = s / worldSize;
          }
          const done = pending;
          pending = [];
          for (const p of done) p.resolve(out.slice());
        }
      }),
  }));
  return reducers;
}
