/**
 * Worker thread that sends the worker's heartbeats (Heartbeat RPC) every intervalMs. Training runs
 * synchronous tfjs kernels on the main thread, which can block its event loop for longer than the
 * heartbeat timeout (a big batch on a slow backend); this thread never blocks.
 */
import {parentPort, workerData} from 'node:worker_threads';

import {credentials} from '@grpc/grpc-js';

import {CoordinatorClient, type HeartbeatResponse} from '../gen/dtrain.js';

const {address, workerId, intervalMs} = workerData as {address: string; workerId: string; intervalMs: number};
const client = new CoordinatorClient(address, credentials.createInsecure());
const timer = setInterval(() => {
  client.heartbeat({workerId, sentAtMs: Date.now()}, {deadline: new Date(Date.now() + intervalMs * 5)} as never, (err: Error | null, res: HeartbeatResponse) => {
    if (!err && !res.known) parentPort?.postMessage({unknown: true});
  });
}, intervalMs);
parentPort?.on('message', (m: {stop?: boolean}) => {
  if (m.stop) {
    clearInterval(timer);
    client.close();
    parentPort?.close();
  }
});
