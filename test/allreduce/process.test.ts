/** The ring across real processes (N = 3), each running rank-process.ts, as workers will run it. */
import assert from 'node:assert/strict';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {runRingProcesses} from '../../src/allreduce/processes.js';
import {assertBitwiseEqual, assertExactMean, randomVector} from './helpers.js';

test('N = 3 separate processes: the float64 mean, bitwise equal everywhere, and every process exits by itself', async () => {
  const [workers, length, steps] = [3, 10_007, 3];
  const {results, exits} = await runRingProcesses<string[]>({
    script: fileURLToPath(new URL('./rank-process.ts', import.meta.url)),
    execArgv: ['--import', 'tsx'],
    workers,
    args: (rank) => [rank, workers, length, steps].map(String),
  });
  const decode = (b64: string): Float32Array => new Float32Array(Uint8Array.from(Buffer.from(b64, 'base64')).buffer);
  for (let step = 0; step < steps; step++) {
    const perRank = results.map((r) => decode(r[step]));
    assertBitwiseEqual(perRank);
    assertExactMean(perRank[0], Array.from({length: workers}, (_, r) => randomVector(length, step, r)));
  }
  // Killed (SIGKILL after 5 s) would mean close() left something open.
  assert.deepEqual(exits, Array.from({length: workers}, () => ({code: 0, signal: null})));
});
