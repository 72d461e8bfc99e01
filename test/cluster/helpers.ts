import type {MeanReducer} from '../../src/worker/replica.js';

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
