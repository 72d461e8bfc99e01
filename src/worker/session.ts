import {existsSync} from 'node:fs';
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises';
import {homedir, hostname} from 'node:os';
import {join} from 'node:path';
import {Worker} from 'node:worker_threads';

import type {ClientDuplexStream, ServiceError} from '@grpc/grpc-js';

import {COMPRESSIONS, type Compression, formLocalRing, RingAllReduce} from '../allreduce/index.js';
import {ExitCode, UserError} from '../cli/errors.js';
import type {ClientSecurity} from '../coordinator/auth.js';
import {coordinatorClient, explainGrpcError} from '../coordinator/client.js';
import {blobHash, decodeDatasetBlob} from '../coordinator/dataset-blob.js';
import type {Dataset} from '../data/index.js';
import {type BackendChoice, type BackendInfo, initBackend, requireBackend} from '../engine/backend.js';
import {applyPrecision, type Precision} from '../engine/precision.js';
import {type CoordinatorClient, type CoordinatorCommand, type DatasetChunk, ProtocolVersion, type RegisterResponse, type StartJob, type WorkerMessage} from '../gen/dtrain.js';
import type {WorkerMetrics} from '../metrics/index.js';
import {parseModelSize} from '../model/architecture.js';
import {parseSafetensors} from '../model/safetensors.js';
import {ShuffleNetV2} from '../model/shufflenetv2.js';
import {SGD} from '../optim/sgd.js';
import {measuredReducer, serveWorkerMetrics, type WorkerMetricsOptions} from './metrics.js';
import {NonFiniteLossError} from './divergence.js';
import {loadMomentum, Replica, serializeModel, serializeMomentum} from './replica.js';

export interface WorkerOptions {
  coordinator: string;
  /** The cluster token and TLS CA for every call to the coordinator (heartbeat thread included). */
  security: ClientSecurity;
  backend: BackendChoice;
  /** Interface the ring socket binds on, and the host advertised to peers. */
  ringHost: string;
  /** Host put in the advertised ring endpoint (default ringHost). */
  ringAdvertise?: string;
  version: string;
  workerId?: string;
  /** How wasm sums in forward convolutions (`--precision`, default fast). */
  precision?: Precision;
  /** Refuse to serve on any other backend (`--require-backend`). */
  requireBackend?: string;
  cacheDir?: string;
  /** Serve /metrics (port 0: any free port); without it the worker exports nothing. */
  metrics?: WorkerMetricsOptions;
  log?: (line: string) => void;
}

/** A worker that has heard nothing from its coordinator for this long leaves (exit code 4). */
export const COORDINATOR_SILENCE_MS = 30_000;
/** A dataset download that receives nothing for this long fails. */
export const DATASET_STALL_MS = 60_000;

/** Heartbeats from a thread that training cannot block; undefined where the thread cannot start (then the session's own heartbeats remain). */
function startHeartbeatThread(address: string, security: ClientSecurity, workerId: string, intervalMs: number): Worker | undefined {
  const js = new URL('./heartbeat-thread.js', import.meta.url);
  const ts = new URL('./heartbeat-thread.ts', import.meta.url);
  // The token goes to the thread in memory (workerData), never through argv or the environment.
  const workerData = {address, workerId, intervalMs, silenceMs: COORDINATOR_SILENCE_MS, token: security.token, tlsCa: security.tlsCa};
  try {
    const worker = existsSync(js) ? new Worker(js, {workerData}) : new Worker(ts, {workerData, execArgv: ['--import', 'tsx']});
    worker.unref();
    worker.on('error', () => {});
    return worker;
  } catch {
    return undefined;
  }
}

/** StartJob's grad_compression ('' = none); the coordinator has refused anything else already, a mismatched version would not be. */
function jobCompression(value: string): Compression {
  const c = value || 'none';
  if (!(COMPRESSIONS as readonly string[]).includes(c)) throw new Error(`the job asks for gradient compression ${c}, which this worker (dtrain) does not know; run the same dtrain version everywhere`);
  return c as Compression;
}

export function defaultDatasetCache(): string {
  return process.env.DTRAIN_CACHE_DIR ? join(process.env.DTRAIN_CACHE_DIR, 'datasets') : join(homedir(), '.cache', 'dtrain', 'datasets');
}

interface ActiveJob {
  /** rank and worldSize change at a regroup. */
  start: StartJob;
  ring: RingAllReduce;
  /** A Halt arrived: the running epoch is being stopped on purpose (its ring error is not a failure). */
  halting?: boolean;
  train: Dataset;
  test: Dataset;
  replica?: Replica;
  model?: ShuffleNetV2;
  /** The epoch last run (Halted names it). */
  epoch?: number;
}

/**
 * A worker: registers, keeps one session stream with the coordinator (heartbeats up, commands down)
 * and runs the commands of its job one at a time. Resolves when the session ends — the coordinator
 * stopped or declared this worker dead — so a worker never outlives its coordinator.
 */
export class WorkerSession {
  private client?: CoordinatorClient;
  private stream?: ClientDuplexStream<WorkerMessage, CoordinatorCommand>;
  private id = '';
  private job?: ActiveJob;
  private queue: Promise<void> = Promise.resolve();
  private backend?: BackendInfo;
  private precision = '';
  private metrics?: WorkerMetrics;
  private readonly log: (line: string) => void;

  constructor(private readonly options: WorkerOptions) {
    this.log = options.log ?? ((line) => process.stderr.write(`dtrain worker: ${line}\n`));
  }

  async run(): Promise<void> {
    this.backend = await initBackend(this.options.backend);
    requireBackend(this.backend, this.options.requireBackend);
    this.precision = applyPrecision(this.backend.name, this.options.precision ?? 'fast');
    const served = this.options.metrics ? await serveWorkerMetrics(this.options.metrics, this.options.workerId ?? '', this.backend, this.options.version) : undefined;
    this.metrics = served?.metrics;
    try {
      await this.session(served?.url ?? '');
    } finally {
      await served?.server.close();
    }
  }

  private async session(metricsUrl: string): Promise<void> {
    const client = coordinatorClient(this.options.coordinator, this.options.security);
    this.client = client;
    const registered = await new Promise<RegisterResponse>((resolve, reject) => {
      client.register(
        {
          workerId: this.options.workerId ?? '',
          host: hostname(),
          ringEndpoint: `tcp://${this.options.ringAdvertise ?? this.options.ringHost}`,
          backend: this.backend!.name,
          device: this.backend!.device,
          dtrainVersion: this.options.version,
          protocolVersion: ProtocolVersion.PROTOCOL_VERSION_CURRENT,
          pid: process.pid,
          metricsUrl,
        },
        {deadline: new Date(Date.now() + 15_000)} as never,
        (err: ServiceError | null, res: RegisterResponse) => (err ? reject(explainGrpcError(err, this.options.coordinator)) : resolve(res)),
      );
    });
    this.id = registered.workerId;
    this.metrics?.setIdentity({worker: this.id, backend: this.backend!.name});
    this.log(`registered as ${this.id} with ${this.options.coordinator} (backend ${this.backend!.name} on ${this.backend!.device}, precision ${this.precision}${metricsUrl ? `, metrics on ${metricsUrl}` : ''})`);
    const stream = client.session();
    this.stream = stream;
    const send = (msg: Omit<WorkerMessage, 'workerId'>) => stream.write({workerId: this.id, ...msg});
    send({hello: {}});
    const interval = registered.heartbeatIntervalMs || 1000;
    const beat = setInterval(() => send({heartbeat: {sentAtMs: Date.now()}}), interval);
    const beats = startHeartbeatThread(this.options.coordinator, this.options.security, this.id, interval);
    // The heartbeat thread's news: the coordinator no longer knows this worker (declared dead while
    // this process was frozen: SIGSTOP, a suspended VM), or has stopped answering (gone, partitioned).
    let unreachable: UserError | undefined;
    beats?.on('message', (m: {unknown?: boolean; silentMs?: number; lastError?: string}) => {
      if (m.unknown) {
        this.log(`the coordinator at ${this.options.coordinator} no longer knows ${this.id} (declared dead after a silence?); leaving the session, the job continues without this worker`);
      } else if (m.silentMs !== undefined && !unreachable) {
        unreachable = new UserError(`lost the coordinator at ${this.options.coordinator}: no heartbeat answered for ${(m.silentMs / 1000).toFixed(0)} s${m.lastError ? ` (${m.lastError})` : ''}`, {
          exitCode: ExitCode.network,
          suggestion: 'check that the coordinator runs and is reachable; the worker exits so that its supervisor can restart it',
        });
      } else {
        return;
      }
      this.job?.ring.close();
      stream.cancel();
    });
    try {
      await new Promise<void>((resolve, reject) => {
        stream.on('data', (cmd: CoordinatorCommand) => {
          // A stop or halt must not wait behind a running epoch that may be blocked on a dead peer's
          // all-reduce: closing the ring now makes that epoch end fast; the queue then cleans up.
          if (cmd.stop) {
            // Said at once: a worker declared dead may be gone before the queue reaches the stop.
            this.log(cmd.stop.jobId ? `job ${cmd.stop.jobId} stopped (${cmd.stop.reason})` : `the coordinator says: ${cmd.stop.reason}`);
            if (this.job?.start.jobId === cmd.stop.jobId && cmd.stop.reason !== 'completed') this.job.ring.close();
          }
          if (cmd.halt && this.job?.start.jobId === cmd.halt.jobId) {
            this.job.halting = true;
            this.job.ring.close();
          }
          this.queue = this.queue.then(() => this.handle(cmd)).catch((err: Error) => {
            const job = this.job;
            // The session is over (the job was ended with it): nobody to tell.
            if (stream.writableEnded) return;
            if (job?.halting) {
              this.log(`job ${job.start.jobId}: epoch halted (${err.message})`);
              return;
            }
            const jobId = job?.start.jobId ?? '';
            this.log(`job ${jobId} failed here: ${err.message}`);
            if (err instanceof NonFiniteLossError) send({nonFiniteLoss: {jobId, epoch: err.epoch, step: err.step, steps: err.steps, loss: err.loss}});
            else send({error: {jobId, message: err.message}});
            this.endJob();
          });
        });
        stream.on('end', () => {
          this.log(`the coordinator at ${this.options.coordinator} ended the session`);
          resolve();
        });
        stream.on('error', (err: ServiceError) => {
          if (unreachable) reject(unreachable);
          else if (err.code === 1 /* CANCELLED by us */) resolve();
          else reject(new UserError(`lost the coordinator at ${this.options.coordinator}: ${err.details || err.message}`, {exitCode: ExitCode.network}));
        });
      });
    } finally {
      clearInterval(beat);
      beats?.postMessage({stop: true});
      void beats?.terminate();
      this.endJob();
      stream.end();
      client.close();
    }
  }

  /** Ends the session (the worker then exits). */
  stop(): void {
    this.stream?.cancel();
  }

  private send(msg: Omit<WorkerMessage, 'workerId'>): void {
    if (this.stream && !this.stream.writableEnded) this.stream.write({workerId: this.id, ...msg});
  }

  private async handle(cmd: CoordinatorCommand): Promise<void> {
    if (cmd.start) return this.startJob(cmd.start);
    const job = this.job;
    if (cmd.stop) {
      if (job && job.start.jobId === cmd.stop.jobId) this.endJob();
      return;
    }
    if (!job) throw new Error('a job command arrived while no job runs here');
    if (cmd.halt) {
      const replica = job.replica;
      if (!replica) throw new Error('halt before the ring was connected');
      const h = replica.halt(job.epoch === cmd.halt.epoch);
      this.log(`job ${job.start.jobId}: halted (${cmd.halt.reason}) after ${h.stepsDone} steps of this segment${h.inFlight ? ', the step in flight undone' : ''}`);
      this.send({halted: {jobId: job.start.jobId, epoch: job.epoch ?? 0, stepsDone: h.stepsDone, inFlight: h.inFlight}});
      return;
    }
    if (cmd.regroup) {
      const {rank, worldSize, stepsDone, sendState, ringPublicKeys} = cmd.regroup;
      const replica = job.replica;
      if (!replica) throw new Error('regroup before the ring was connected');
      replica.rollBackTo(stepsDone);
      job.ring.close();
      // Its own CURVE key pair stays the job's; the peers' keys come in the new rank order.
      job.start = {...job.start, rank, worldSize, ringPublicKeys};
      job.ring = await this.bindRing(job.start);
      job.halting = false;
      this.metrics?.setIdentity({worker: this.id, rank, backend: this.backend!.name});
      this.log(`job ${job.start.jobId}: regrouped as rank ${rank}/${worldSize} at ${stepsDone} steps of the segment, ring inbox ${job.ring.endpoint}`);
      this.send({
        ringBound: {
          jobId: job.start.jobId,
          endpoint: job.ring.endpoint!,
          initialState: sendState ? Buffer.from(await serializeModel(replica.model)) : Buffer.alloc(0),
          optimizer: sendState ? Buffer.from(await serializeMomentum(replica.model, replica.optimizer)) : Buffer.alloc(0),
        },
      });
      return;
    }
    if (cmd.connect) {
      const {start} = job;
      const c = cmd.connect;
      job.ring.connect(c.ringEndpoints.length ? c.ringEndpoints : c.successorEndpoint);
      const reducer = this.metrics ? measuredReducer(job.ring, this.metrics) : job.ring;
      // Tagged with the generation: a message of an abandoned ring can never be taken for this one's.
      const position = {jobId: `${start.jobId}#${c.generation}`, rank: start.rank, worldSize: start.worldSize};
      if (job.replica && c.state.length === 0) {
        // A survivor of a regroup keeps its weights, momentum and the epoch's sums.
        job.replica.regroup(reducer, position);
      } else {
        if (c.state.length > 0) {
          job.model?.dispose();
          job.model = ShuffleNetV2.fromState(parseModelSize(start.hyper!.size), parseSafetensors(c.state, 'broadcast state').tensors);
        }
        if (!job.model) throw new Error('no initial weights: rank 0 must send them');
        const h = start.hyper!;
        const optimizer = new SGD({lr: h.lr, momentum: h.momentum, weightDecay: h.weightDecay});
        if (c.optimizer.length > 0) loadMomentum(optimizer, c.optimizer);
        job.replica = new Replica(job.model, optimizer, reducer, {...position, globalBatch: h.globalBatch, seed: h.seed, augment: h.augment});
      }
      this.send({ready: {jobId: start.jobId, checksum: await job.replica.stepStateChecksum()}});
      return;
    }
    if (cmd.runEpoch) {
      const replica = job.replica;
      if (!replica) throw new Error('run epoch before the ring was connected');
      const {epoch, lr, doneSegments} = cmd.runEpoch;
      job.epoch = epoch;
      const rank0 = job.start.rank === 0;
      let images = 0;
      const t0 = performance.now();
      const r = await replica.trainEpoch(job.train, epoch, lr, (s) => {
        images += s.globalImages;
        this.metrics?.stepSeconds.observe(s.seconds);
        this.metrics?.imagesProcessed.inc({phase: 'train'}, s.images);
        if (rank0) this.send({step: {jobId: job.start.jobId, epoch, step: s.step, steps: s.steps, loss: s.loss, images, seconds: (performance.now() - t0) / 1000}});
      }, doneSegments);
      await replica.averageBatchNorm();
      const ev = await replica.evaluate(job.test);
      this.metrics?.imagesProcessed.inc({phase: 'eval'}, ev.countPerClass.reduce((a, b) => a + b, 0));
      const checksum = await replica.checksum();
      // Halted during eval (which needs no ring): the coordinator waits for Halted, not for this.
      if (job.halting) return;
      const withState = rank0 && cmd.runEpoch.checkpoint;
      this.send({
        epochDone: {
          jobId: job.start.jobId,
          epoch,
          trainLossSum: r.trainLossSum,
          trainCorrect: r.trainCorrect,
          trainCount: r.trainCount,
          testLossSum: ev.lossSum,
          testCorrectPerClass: ev.correctPerClass,
          testCountPerClass: ev.countPerClass,
          seconds: r.seconds,
          allreduceSeconds: r.allreduceSeconds,
          steps: r.steps,
          checksum,
          weights: withState ? Buffer.from(await serializeModel(replica.model, {format: 'dtrain-checkpoint', size: job.start.hyper!.size, epoch: String(epoch + 1), seed: String(job.start.hyper!.seed)})) : Buffer.alloc(0),
          optimizer: withState ? Buffer.from(await serializeMomentum(replica.model, replica.optimizer)) : Buffer.alloc(0),
        },
      });
    }
  }

  private async startJob(start: StartJob): Promise<void> {
    this.endJob();
    if (start.backend && start.backend !== 'auto' && start.backend !== this.backend!.name) {
      throw new Error(`the job requires backend ${start.backend}, this worker runs ${this.backend!.name}`);
    }
    const {train, test} = await this.dataset(start.datasetHash);
    if (train.count !== start.trainCount || test.count !== start.testCount) throw new Error(`dataset ${start.datasetHash.slice(0, 12)} has ${train.count}/${test.count} images, the job says ${start.trainCount}/${start.testCount}`);
    const ring = await this.bindRing(start);
    const endpoint = ring.endpoint!;
    const job: ActiveJob = {start, ring, train, test};
    this.job = job;
    this.metrics?.setIdentity({worker: this.id, rank: start.rank, backend: this.backend!.name});
    const h = start.hyper!;
    let initialState = Buffer.alloc(0);
    if (start.rank === 0) {
      // Rank 0 initialises from the seed and broadcasts (through the coordinator) to the others.
      job.model = ShuffleNetV2.create(parseModelSize(h.size), h.seed);
      initialState = Buffer.from(await serializeModel(job.model));
    }
    this.log(`job ${start.jobId}: rank ${start.rank}/${start.worldSize}, ring inbox ${endpoint}${start.ringSecretKey ? ' (CURVE)' : ''}, gradients ${ring.compression === 'fp16' ? 'as fp16' : 'exact'}`);
    this.send({ringBound: {jobId: start.jobId, endpoint, initialState, optimizer: Buffer.alloc(0)}});
  }

  /**
   * The job's ring rank with its inbox bound (world size 1: a ring of one in this process); CURVE when
   * the job issued keys; gradient compression as the job says (StartJob.hyper, kept by a regroup).
   */
  private async bindRing({rank, worldSize, ringPublicKey, ringSecretKey, ringPublicKeys, hyper}: StartJob): Promise<RingAllReduce> {
    const curve = ringSecretKey ? {publicKey: ringPublicKey, secretKey: ringSecretKey, peers: ringPublicKeys} : undefined;
    const compression = jobCompression(hyper?.gradCompression ?? '');
    const ring = worldSize === 1 ? (await formLocalRing(1, {compression}))[0] : new RingAllReduce({rank, worldSize, bindHost: this.options.ringHost, advertiseHost: this.options.ringAdvertise, curve, compression});
    await ring.start();
    return ring;
  }

  private endJob(): void {
    const job = this.job;
    if (!job) return;
    this.job = undefined;
    job.ring.close();
    job.model?.dispose();
    job.replica?.optimizer.dispose();
    job.replica?.dispose();
  }

  /** The job's dataset from the local cache (verified by hash) or streamed from the coordinator. */
  private async dataset(hash: string): Promise<{train: Dataset; test: Dataset}> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`bad dataset hash ${hash}`);
    const dir = this.options.cacheDir ?? defaultDatasetCache();
    const file = join(dir, `${hash}.bin`);
    try {
      const cached = await readFile(file);
      if (blobHash(cached) === hash) return decodeDatasetBlob(cached);
      this.log(`cached dataset ${file} does not match its hash; fetching it again`);
    } catch {
      // not cached
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let total = 0;
    let stall: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve, reject) => {
      const call = this.client!.fetchDataset({hash});
      const watch = () => {
        clearTimeout(stall);
        stall = setTimeout(() => {
          call.cancel();
          reject(new Error(`the dataset download from the coordinator at ${this.options.coordinator} stalled: nothing for ${DATASET_STALL_MS / 1000} s after ${received} of ${total || '?'} bytes`));
        }, DATASET_STALL_MS);
      };
      watch();
      call.on('data', (c: DatasetChunk) => {
        watch();
        total = c.totalBytes;
        if (c.offset !== received) {
          call.cancel();
          reject(new Error(`dataset chunk at offset ${c.offset}, expected ${received}`));
          return;
        }
        chunks.push(c.data);
        received += c.data.length;
      });
      call.on('error', (err: ServiceError) => reject(explainGrpcError(err, this.options.coordinator)));
      call.on('end', () => resolve());
    }).finally(() => clearTimeout(stall));
    const blob = Buffer.concat(chunks);
    const got = blobHash(blob);
    if (got !== hash) throw new Error(`dataset from the coordinator hashes to ${got.slice(0, 12)}, expected ${hash.slice(0, 12)}`);
    try {
      await mkdir(dir, {recursive: true});
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, blob);
      await rename(tmp, file);
    } catch (err) {
      this.log(`cannot cache the dataset in ${dir}: ${(err as Error).message}`);
    }
    return decodeDatasetBlob(blob);
  }
}
