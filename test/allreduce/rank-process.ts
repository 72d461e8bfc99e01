/**
 * One rank as its own process for process.test.ts, speaking processes.ts's WorkerMessage protocol
 * (ready → peers → done → exit). Its result per step goes back as base64 of the float32 bytes.
 * After 'exit' it only closes its ring: a leaked socket or timer would keep it alive and fail the test.
 */
import type {WorkerMessage} from '../../src/allreduce/processes.js';
import {RingAllReduce} from '../../src/allreduce/index.js';
import {randomVector} from './helpers.js';

type Message = WorkerMessage<string[]>;
const [rank, worldSize, length, steps] = process.argv.slice(2).map(Number);
const ring = new RingAllReduce({rank, worldSize, timeoutMs: 20_000, chunkBytes: 4096});
const report = (m: Message): void => void process.send!(m);

async function run(peers: string[]): Promise<string[]> {
  ring.connect(peers);
  const results: string[] = [];
  for (let step = 0; step < steps; step++) {
    const data = await ring.allReduceMean(randomVector(length, step, rank), {job: 'procs', step});
    results.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'));
  }
  return results;
}

process.on('message', (m: Message) => {
  if (m.type === 'peers') {
    run(m.peers).then(
      (results) => report({type: 'done', results}),
      (err: Error) => report({type: 'error', message: err.message}),
    );
  } else if (m.type === 'exit') {
    ring.close();
    process.disconnect();
  }
});

report({type: 'ready', endpoint: await ring.start()});
