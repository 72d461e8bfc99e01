/**
 * A worker's /metrics: its registry and server, and the ring wrapped so that every all-reduce is
 * timed and its bytes and peer-wait time are counted (the ring keeps running totals; the deltas
 * around each call are this call's share).
 */
import * as tf from '@tensorflow/tfjs-core';

import type {RingAllReduce} from '../allreduce/index.js';
import type {BackendInfo} from '../engine/backend.js';
import {advertisedMetricsUrl, createWorkerMetrics, type MetricsServer, startMetricsServer, type WorkerMetrics} from '../metrics/index.js';
import type {MeanReducer} from './replica.js';

export interface WorkerMetricsOptions {
  /** 0 takes a free port. */
  port: number;
  host: string;
  /** Host others reach this worker on when `host` is a wildcard (a wildcard or nothing: the machine's hostname). */
  advertise?: string;
}

export interface ServedWorkerMetrics {
  metrics: WorkerMetrics;
  server: MetricsServer;
  /** What the worker reports at registration (scrape target). */
  url: string;
}

export async function serveWorkerMetrics(options: WorkerMetricsOptions, worker: string, backend: BackendInfo, version: string): Promise<ServedWorkerMetrics> {
  const metrics = createWorkerMetrics({version, worker, backend: backend.name, device: backend.device, tfjsMemory: () => tf.memory()});
  const server = await startMetricsServer(metrics.registry, {port: options.port, host: options.host});
  return {metrics, server, url: advertisedMetricsUrl(server, options.host, options.advertise)};
}

/** The ring as a MeanReducer that records duration, bytes and peer wait of every all-reduce (gradients each step, BN statistics once per epoch). */
export function measuredReducer(ring: RingAllReduce, m: WorkerMetrics): MeanReducer {
  return {
    async allReduceMean(data, tag, call) {
      const before = {...ring.totals};
      const t0 = performance.now();
      const mean = await ring.allReduceMean(data, tag, call);
      m.allreduceSeconds.observe((performance.now() - t0) / 1000);
      m.allreduceBytes.inc({direction: 'sent'}, ring.totals.sentBytes - before.sentBytes);
      m.allreduceBytes.inc({direction: 'received'}, ring.totals.receivedBytes - before.receivedBytes);
      m.allreducePeerWaitSeconds.inc(ring.totals.waitSeconds - before.waitSeconds);
      return mean;
    },
  };
}
