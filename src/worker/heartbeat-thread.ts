/**
 * Worker thread that sends the worker's heartbeats (Heartbeat RPC) every intervalMs. Training runs
 * synchronous tfjs kernels on the main thread, which can block its event loop for longer than the
 * heartbeat timeout (a big batch on a slow backend); this thread never blocks.
 */
import {parentPort, workerData} from 'node:worker_threads';

import {channelCredentials, tokenInterceptor} from '../coordinator/auth.js';
import {CoordinatorClient, type HeartbeatResponse} from '../gen/dtrain.js';

const {address, workerId, intervalMs, silenceMs, token, tlsCa} = workerData as {address: string; workerId: string; intervalMs: number; silenceMs: number; token?: string; tlsCa?: Uint8Array};
// workerData arrives structured-cloned: the CA is a plain Uint8Array, grpc-js wants a Buffer.
const client = new CoordinatorClient(address, channelCredentials({tlsCa: tlsCa && Buffer.from(tlsCa)}), {interceptors: token === undefined ? [] : [tokenInterceptor(token)]});
let lastAnswer = Date.now();
let lastTick = Date.now();
let lastError = '';
const timer = setInterval(() => {
  // This process was frozen (SIGSTOP, a suspended VM): its silence is not the coordinator's; give the answer a fresh window.
  if (Date.now() - lastTick > 3 * intervalMs) lastAnswer = Date.now();
  lastTick = Date.now();
  // No answer for silenceMs: the coordinator is gone or unreachable without the session noticing (a partition).
  if (Date.now() - lastAnswer > silenceMs) parentPort?.postMessage({silentMs: Date.now() - lastAnswer, lastError});
  client.heartbeat({workerId, sentAtMs: Date.now()}, {deadline: new Date(Date.now() + intervalMs * 5)} as never, (err: Error | null, res: HeartbeatResponse) => {
    if (err) {
      lastError = err.message;
      return;
    }
    lastAnswer = Date.now();
    if (!res.known) parentPort?.postMessage({unknown: true});
  });
}, intervalMs);
parentPort?.on('message', (m: {stop?: boolean}) => {
  if (m.stop) {
    clearInterval(timer);
    client.close();
    parentPort?.close();
  }
});
