/**
 * One rank as its own process for process.test.ts, speaking processes.ts's WorkerMessage protocol
 * through serveRingRank. Its result per step goes back as base64 of the float32 bytes.
 * After 'exit' it only closes its ring: a leaked socket or timer would keep it alive and fail the test.
 */
import {serveRingRank} from '../../src/allreduce/processes.js';
import {RingAllReduce} from '../../src/allreduce/index.js';
import {randomVector} from './helpers.js';

const [rank, worldSize, length, steps] = process.argv.slice(2).map(Number);
const ring = new RingAllReduce({rank, worldSize, timeoutMs: 20_000, chunkBytes: 4096});

async function run(): Promise<string[]> {
  const results: string[] = [];
  for (let step = 0; step < steps; step++) {
    const data = await ring.allReduceMean(randomVector(length, step, rank), {job: 'procs', step});
    results.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'));
  }
  return results;
}

serveRingRank(ring, run);
