import {hostname} from 'node:os';

import {Server, status as GrpcStatus, type ServiceError} from '@grpc/grpc-js';

import {SCHEDULERS} from '../optim/schedulers.js';
import {COMPRESSIONS} from '../allreduce/index.js';
import {CoordinatorService, type CoordinatorServer as CoordinatorHandlers, ProtocolVersion} from '../gen/dtrain.js';
import {advertisedMetricsUrl, type CoordinatorMetrics, createCoordinatorMetrics, type MetricsServer, startMetricsServer} from '../metrics/index.js';
import {authInterceptor, serverCredentials} from './auth.js';
import {Job} from './job.js';
import {type CoordinatorMetricsOptions, jobEnded, jobMetricsObserver} from './metrics.js';
import {WorkerRegistry} from './registry.js';

/**
 * The largest legitimate message is a checkpointing EpochDone of size 2: 5.34 M parameters as float32
 * weights (21.4 MB, plus BN buffers) and as momentum (21.4 MB), about 43 MB; 64 MiB leaves room
 * and refuses anything bigger with RESOURCE_EXHAUSTED before it is buffered whole.
 */
export const GRPC_MESSAGE_LIMIT = 64 * 1024 * 1024;
export const GRPC_OPTIONS = {'grpc.max_receive_message_length': GRPC_MESSAGE_LIMIT, 'grpc.max_send_message_length': GRPC_MESSAGE_LIMIT};
export const DATASET_CHUNK_BYTES = 1 << 20;
export const HEARTBEAT_INTERVAL_MS = 1000;

export interface CoordinatorOptions {
  host: string;
  port: number;
  /** A worker silent this long is declared dead (default 10 s). */
  heartbeatTimeoutMs?: number;
  version: string;
  /** The cluster token every call must carry; without one only loopback callers are served. */
  token?: string;
  /** PEM files: serve gRPC over TLS. */
  tls?: {cert?: string; key?: string};
  /** Serve /metrics (port 0: any free port); without it the coordinator exports nothing. */
  metrics?: CoordinatorMetricsOptions;
  log?: (line: string) => void;
}

function grpcError(code: GrpcStatus, message: string): Partial<ServiceError> {
  return {code, details: message, message};
}

/**
 * The coordinator: gRPC server, worker registry with heartbeats, and jobs (one at a time). Touches
 * no tensors: it assigns ranks and ring order, relays bytes, aggregates sums, owns the LR schedule
 * and writes checkpoints.
 */
export class CoordinatorServer {
  readonly registry: WorkerRegistry;
  private readonly server: Server;
  private readonly datasets = new Map<string, Buffer>();
  private readonly jobs: Job[] = [];
  private current?: Job;
  private jobCounter = 0;
  private readonly started = Date.now();
  private readonly log: (line: string) => void;
  port = 0;
  private metrics?: CoordinatorMetrics;
  private metricsServer?: MetricsServer;
  /** Where /metrics is served ('' when not). */
  metricsUrl = '';

  constructor(private readonly options: CoordinatorOptions) {
    this.log = options.log ?? ((line) => process.stderr.write(`dtrain coordinator: ${line}\n`));
    this.registry = new WorkerRegistry(options.heartbeatTimeoutMs ?? 10_000, this.log);
    this.server = new Server({...GRPC_OPTIONS, interceptors: [authInterceptor(options.token, this.log)]});
    this.server.addService(CoordinatorService, this.handlers());
  }

  async start(): Promise<number> {
    const credentials = await serverCredentials(this.options.tls ?? {});
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${this.options.host}:${this.options.port}`, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
    const mo = this.options.metrics;
    if (mo) {
      this.metrics = createCoordinatorMetrics({version: this.options.version, heartbeatAges: () => this.registry.heartbeatAges(), workerCounts: () => this.registry.counts()});
      this.metricsServer = await startMetricsServer(this.metrics.registry, {port: mo.port, host: mo.host}).catch((err: unknown) => {
        // Nothing registered yet: drop the gRPC listener so the caller can report the metrics port.
        this.server.forceShutdown();
        throw err;
      });
      this.metricsUrl = advertisedMetricsUrl(this.metricsServer, mo.host);
    }
    this.registry.startWatchdog();
    return this.port;
  }

  /** Ends every session (so workers exit), fails a running job, stops the server. */
  async stop(): Promise<void> {
    this.current?.fail(new Error('the coordinator is shutting down'));
    this.registry.stop();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await this.metricsServer?.close();
  }

  private handlers(): CoordinatorHandlers {
    return {
      register: (call, callback) => {
        const req = call.request;
        if (req.protocolVersion !== ProtocolVersion.PROTOCOL_VERSION_CURRENT) {
          callback(grpcError(GrpcStatus.FAILED_PRECONDITION, `protocol version ${req.protocolVersion} is not supported (coordinator speaks ${ProtocolVersion.PROTOCOL_VERSION_CURRENT}, dtrain ${this.options.version}); run the same dtrain version everywhere`));
          return;
        }
        const entry = this.registry.register(req);
        this.log(`worker ${entry.id} registered from ${req.host} (pid ${req.pid}, backend ${req.backend} on ${req.device}, dtrain ${req.dtrainVersion})`);
        callback(null, {workerId: entry.id, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS});
      },

      session: (call) => {
        let entry: ReturnType<WorkerRegistry['get']>;
        call.on('data', (msg: import('../gen/dtrain.js').WorkerMessage) => {
          if (!entry) {
            entry = this.registry.get(msg.workerId);
            if (!entry || entry.state === 'dead' || entry.stream) {
              call.emit('error', grpcError(GrpcStatus.NOT_FOUND, `unknown or dead worker id ${msg.workerId}: register first`));
              call.end();
              return;
            }
            entry.stream = call;
            entry.state = 'idle';
          }
          this.registry.touch(entry);
          if (msg.hello || msg.heartbeat) return;
          entry.onMessage?.(msg);
        });
        const lost = (why: string) => {
          if (entry) this.registry.kill(entry, why);
        };
        call.on('end', () => {
          lost('its session ended');
          call.end();
        });
        call.on('error', (err) => lost(`session error: ${err.message}`));
        call.on('cancelled', () => lost('session cancelled'));
      },

      submitJob: (call) => {
        const spec = call.request;
        const problem = this.validate(spec);
        if (problem) {
          call.emit('error', grpcError(GrpcStatus.INVALID_ARGUMENT, problem));
          return;
        }
        if (this.current) {
          call.emit('error', grpcError(GrpcStatus.RESOURCE_EXHAUSTED, `job ${this.current.id} is running; one job at a time`));
          return;
        }
        const observe = this.metrics ? jobMetricsObserver(this.metrics, spec) : undefined;
        this.metrics?.setJobState('pending');
        const job = new Job(`job-${++this.jobCounter}-${Date.now().toString(36)}`, spec, {publishDataset: (hash, blob) => this.datasets.set(hash, blob), idleWorkers: () => this.registry.idle(), log: this.log}, (p) => {
          observe?.(p);
          call.write(p);
        });
        this.current = job;
        this.jobs.push(job);
        call.on('cancelled', () => job.fail(new Error('the client that submitted the job went away')));
        void (async () => {
          try {
            const workers = await this.waitForWorkers(spec.workers, spec.waitMs || 30_000, call);
            this.log(`job ${job.id}: ${workers.length} workers (${workers.map((w) => w.id).join(', ')}), ${spec.epochs} epochs`);
            await job.run(workers);
            this.log(`job ${job.id}: completed`);
            if (this.metrics) jobEnded(this.metrics, 'completed');
            call.end();
          } catch (err) {
            job.state = 'failed';
            job.error ??= (err as Error).message;
            this.log(`job ${job.id}: failed: ${(err as Error).message}`);
            if (this.metrics) jobEnded(this.metrics, 'failed');
            call.emit('error', grpcError(GrpcStatus.ABORTED, (err as Error).message));
          } finally {
            this.current = undefined;
            this.datasets.clear();
          }
        })();
      },

      heartbeat: (call, callback) => {
        const entry = this.registry.get(call.request.workerId);
        const known = Boolean(entry && entry.state !== 'dead');
        if (entry && known) this.registry.touch(entry);
        callback(null, {known});
      },

      clusterStatus: (_call, callback) => {
        callback(null, {
          workers: this.registry.all().map((w) => this.registry.describe(w)),
          jobs: this.jobs.map((j) => j.info()),
          coordinatorVersion: this.options.version,
          uptimeMs: Date.now() - this.started,
          coordinatorMetricsUrl: this.metricsUrl,
          coordinatorPid: process.pid,
        });
      },

      fetchDataset: (call) => {
        const blob = this.datasets.get(call.request.hash);
        if (!blob) {
          call.emit('error', grpcError(GrpcStatus.NOT_FOUND, `no dataset with hash ${call.request.hash} on this coordinator`));
          return;
        }
        void (async () => {
          for (let offset = 0; offset < blob.length; offset += DATASET_CHUNK_BYTES) {
            if (call.cancelled) return;
            const ok = call.write({hash: call.request.hash, totalBytes: blob.length, offset, data: blob.subarray(offset, offset + DATASET_CHUNK_BYTES)});
            if (!ok) await new Promise((resolve) => call.once('drain', resolve));
          }
          call.end();
        })();
      },
    };
  }

  private validate(spec: import('../gen/dtrain.js').JobSpec): string | undefined {
    const h = spec.hyper;
    if (!h) return 'the job has no hyper-parameters';
    if (spec.workers < 1) return `a job needs at least 1 worker, got ${spec.workers}`;
    if (h.globalBatch < spec.workers) return `the global batch (${h.globalBatch}) must be at least the number of workers (${spec.workers})`;
    if (spec.epochs < 1) return `epochs must be at least 1, got ${spec.epochs}`;
    if (spec.minWorkers > spec.workers) return `--min-workers (${spec.minWorkers}) cannot exceed --workers (${spec.workers})`;
    if (!(SCHEDULERS as readonly string[]).includes(spec.scheduler)) return `unknown scheduler ${spec.scheduler} (use one of ${SCHEDULERS.join(', ')})`;
    if (h.gradCompression && !(COMPRESSIONS as readonly string[]).includes(h.gradCompression)) return `unknown gradient compression ${h.gradCompression} (use one of ${COMPRESSIONS.join(', ')})`;
    if (!spec.checkpointDir) return 'the job needs a checkpoint directory';
    return undefined;
  }

  private async waitForWorkers(n: number, waitMs: number, call: {cancelled: boolean}) {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const idle = this.registry.idle();
      if (idle.length >= n) return idle.slice(0, n);
      if (call.cancelled) throw new Error('the client went away');
      if (Date.now() > deadline) {
        throw new Error(`the job needs ${n} workers but ${idle.length} ${idle.length === 1 ? 'is' : 'are'} idle on ${hostname()} after ${(waitMs / 1000).toFixed(0)} s; start more with \`dtrain worker --coordinator HOST:PORT\``);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
