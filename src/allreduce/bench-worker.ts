/**
 * One rank of `dtrain bench allreduce`, run as its own process by bench.ts (fork, IPC channel).
 * It speaks runRingProcesses's WorkerMessage protocol through serveRingRank.
 */
import {RingAllReduce} from './ring.js';
import type {WorkerConfig, WorkerSizeResult} from './bench.js';
import {serveRingRank} from './processes.js';

const config = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
const ring = new RingAllReduce({...config.ring, rank: config.rank, worldSize: config.workers, curve: config.curve});

async function measure(): Promise<WorkerSizeResult[]> {
  const barrier = new Float32Array(1);
  const results: WorkerSizeResult[] = [];
  let step = 0;
  for (const bytes of config.sizes) {
    // Every rank holds its rank number: the mean, (N−1)/2, is exact in float32 and stays so, which checks every round
    // (exactly without compression; with fp16, within its N roundings to half precision).
    const data = new Float32Array(bytes / 4).fill(config.rank);
    const expected = (config.workers - 1) / 2;
    const tolerance = config.ring.compression === 'fp16' ? config.workers * 2 ** -11 * expected : 0;
    const times: number[] = [];
    for (let i = 0; i < config.warmup + config.iters; i++) {
      // A one-element all-reduce lines the ranks up, so each timing starts together, as nccl-tests does.
      await ring.allReduceMean(barrier, {job: 'bench', step: step++});
      const t0 = performance.now();
      await ring.allReduceMean(data, {job: 'bench', step: step++});
      if (i >= config.warmup) times.push(performance.now() - t0);
    }
    const wrong = data.findIndex((v) => !(Math.abs(v - expected) <= tolerance));
    if (wrong >= 0) throw new Error(`rank ${config.rank}: element ${wrong} is ${data[wrong]} after the all-reduce, expected ${expected}`);
    results.push({bytes, times});
  }
  return results;
}

serveRingRank(ring, measure);
