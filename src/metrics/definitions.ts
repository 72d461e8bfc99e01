/**
 * Every dtrain metric, defined once. The catalog (`COORDINATOR_METRICS`, `WORKER_METRICS`) is
 * plain data so that the docs, the Grafana dashboard generator and the tests that check alert rules
 * and panels all read the same names; `createCoordinatorMetrics` / `createWorkerMetrics` turn it
 * into prom-client objects on a fresh Registry per process (never the global one, so tests and
 * embedded clusters can hold several side by side).
 */
import {collectDefaultMetrics, Counter, Gauge, Histogram, Registry} from 'prom-client';

export type MetricKind = 'counter' | 'gauge' | 'histogram';
export type MetricRole = 'coordinator' | 'worker';

export interface MetricSpec<K extends MetricKind = MetricKind, L extends string = string> {
  readonly kind: K;
  readonly name: string;
  readonly help: string;
  /** Labels the caller sets; worker metrics also carry the registry's default labels. */
  readonly labels: readonly L[];
  readonly buckets?: readonly number[];
}

function spec<K extends MetricKind, L extends string = never>(kind: K, name: string, help: string, labels: readonly L[] = [], buckets?: readonly number[]): MetricSpec<K, L> {
  return {kind, name, help, labels, buckets};
}

/** One optimizer step (forward + backward + all-reduce + update) takes ~10 ms on a GPU, up to a minute on the pure-JS backend. */
export const STEP_SECONDS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60] as const;
/** A ring all-reduce of 0.35–5.3 M float32 parameters: ~1 ms on one host, seconds over a slow network, 30 s is the ring timeout scale. */
export const ALLREDUCE_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/** States of `dtrain_job_state`: the coordinator's job states, plus `idle` when no job exists. */
export const JOB_STATES = ['idle', 'pending', 'running', 'completed', 'failed'] as const;
export type JobStateLabel = (typeof JOB_STATES)[number];

/** Default labels of every series a worker exports (the backend is never silent, see architecture.md). */
export const WORKER_DEFAULT_LABELS = ['worker', 'rank', 'backend'] as const;

export const COORDINATOR_METRICS = {
  info: spec('gauge', 'dtrain_coordinator_info', 'Always 1; the version label says which dtrain the coordinator runs.', ['version']),
  workersRegistered: spec('gauge', 'dtrain_workers_registered', 'Workers the coordinator has registered since it started, dead ones included (it keeps them until it restarts).'),
  workersAlive: spec('gauge', 'dtrain_workers_alive', 'Registered workers whose last heartbeat is younger than the heartbeat timeout.'),
  heartbeatAgeSeconds: spec('gauge', 'dtrain_heartbeat_age_seconds', 'Seconds since the coordinator last heard from each registered worker.', ['worker']),
  jobState: spec('gauge', 'dtrain_job_state', 'State of the current (or last) job: 1 on the series of its state, 0 on the others.', ['state']),
  jobGradCompression: spec('gauge', 'dtrain_job_grad_compression', 'What the current (or last) job\'s gradient all-reduce sends between workers: 1 on the series of its compression (none or fp16), 0 on the other.', ['compression']),
  jobsFinished: spec('counter', 'dtrain_jobs_finished_total', 'Jobs that ended, by outcome (completed or failed).', ['outcome']),
  epoch: spec('gauge', 'dtrain_job_epoch', 'Epochs the current job has completed.'),
  epochsPlanned: spec('gauge', 'dtrain_job_planned_epochs', 'Epochs the current job was submitted with.'),
  step: spec('gauge', 'dtrain_job_step', 'Optimizer steps the current job has completed (global steps, the same count on every rank).'),
  regroups: spec('counter', 'dtrain_job_regroups_total', 'Times a job lost workers (or took in new ones) and continued with a re-formed ring.'),
  lostSteps: spec('counter', 'dtrain_job_lost_steps_total', 'Optimizer steps undone and redone because a worker was lost mid-step.'),
  trainLoss: spec('gauge', 'dtrain_train_loss', 'Mean training cross-entropy of the last completed epoch, over all ranks.'),
  trainAccuracy: spec('gauge', 'dtrain_train_accuracy_ratio', 'Training accuracy (0-1) of the last completed epoch, over all ranks.'),
  testLoss: spec('gauge', 'dtrain_test_loss', 'Mean test cross-entropy of the last evaluation.'),
  testAccuracy: spec('gauge', 'dtrain_test_accuracy_ratio', 'Test accuracy (0-1) of the last evaluation.'),
  testClassAccuracy: spec('gauge', 'dtrain_test_class_accuracy_ratio', 'Test accuracy (0-1) of the last evaluation for each CIFAR-10 class.', ['class']),
  learningRate: spec('gauge', 'dtrain_learning_rate', 'Learning rate the scheduler set for the current epoch.'),
} as const;

export const WORKER_METRICS = {
  info: spec('gauge', 'dtrain_worker_info', 'Always 1; labels say which dtrain version and device the worker runs (the backend is a default label).', ['version', 'device']),
  imagesProcessed: spec('counter', 'dtrain_worker_images_processed_total', 'Images this worker pushed through the model, by phase (train or eval).', ['phase']),
  stepSeconds: spec('histogram', 'dtrain_worker_step_duration_seconds', 'Wall time of one training step on this worker: forward, backward, all-reduce and update.', [], STEP_SECONDS_BUCKETS),
  allreduceSeconds: spec('histogram', 'dtrain_worker_allreduce_duration_seconds', 'Wall time of one ring all-reduce: the gradient buffer every step, BN statistics once per epoch.', [], ALLREDUCE_SECONDS_BUCKETS),
  allreduceBytes: spec('counter', 'dtrain_worker_allreduce_bytes_total', 'Gradient bytes this worker moved over the ring, by direction (sent or received).', ['direction']),
  allreducePeerWaitSeconds: spec('counter', 'dtrain_worker_allreduce_peer_wait_seconds_total', 'Time this worker spent inside all-reduce waiting for a peer chunk to arrive.'),
  tfjsTensors: spec('gauge', 'dtrain_worker_tfjs_tensors', 'Tensors alive in TensorFlow.js (tf.memory().numTensors); steady growth means a leak.'),
  tfjsMemoryBytes: spec('gauge', 'dtrain_worker_tfjs_memory_bytes', 'Bytes held by TensorFlow.js tensors (tf.memory().numBytes).'),
} as const;

export interface CatalogEntry extends MetricSpec {
  readonly role: MetricRole;
}

/** Every dtrain metric with its role, in definition order (docs and tests iterate this). */
export const METRIC_CATALOG: readonly CatalogEntry[] = [
  ...Object.values(COORDINATOR_METRICS).map((s): CatalogEntry => ({...s, role: 'coordinator'})),
  ...Object.values(WORKER_METRICS).map((s): CatalogEntry => ({...s, role: 'worker'})),
];

/** Series names a query may use: every metric, plus the `_bucket`/`_sum`/`_count` series of histograms. */
export function seriesNames(): Set<string> {
  const names = new Set<string>();
  for (const m of METRIC_CATALOG) {
    names.add(m.name);
    if (m.kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
  }
  return names;
}

type Built<S> =
  S extends MetricSpec<'counter', infer L> ? Counter<L> : S extends MetricSpec<'gauge', infer L> ? Gauge<L> : S extends MetricSpec<'histogram', infer L> ? Histogram<L> : never;
type BuiltAll<T> = {readonly [K in keyof T]: Built<T[K]>};
/** Called at scrape time, so values that live elsewhere (tf.memory(), heartbeat clocks) need no timer. */
type Collectors<T> = Partial<Record<keyof T, () => void>>;

function build<T extends Record<string, MetricSpec>>(specs: T, registry: Registry, collectors: Collectors<T> = {}): BuiltAll<T> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(specs)) {
    const collect = collectors[key as keyof T];
    const config = {name: s.name, help: s.help, labelNames: [...s.labels], registers: [registry], ...(collect ? {collect} : {})};
    if (s.kind === 'counter') out[key] = new Counter(config);
    else if (s.kind === 'gauge') out[key] = new Gauge(config);
    else out[key] = new Histogram({...config, buckets: [...(s.buckets ?? [])]});
  }
  return out as BuiltAll<T>;
}

export interface CommonOptions {
  /** dtrain version for the info metric. */
  version: string;
  /** Node process metrics (CPU, memory, event loop, GC); on by default. */
  defaultMetrics?: boolean;
}

export type CoordinatorMetrics = BuiltAll<typeof COORDINATOR_METRICS> & {
  readonly registry: Registry;
  /** Sets `dtrain_job_state`: 1 for `state`, 0 for every other state. */
  setJobState(state: JobStateLabel): void;
};

export interface CoordinatorMetricsOptions extends CommonOptions {
  /** Current heartbeat age in seconds per worker id, read at each scrape; workers absent from it lose their series. */
  heartbeatAges?: () => Iterable<readonly [worker: string, seconds: number]>;
  /** Registered and alive worker counts, read at each scrape (the registry owns them, so no hook per change). */
  workerCounts?: () => {registered: number; alive: number};
}

export function createCoordinatorMetrics(options: CoordinatorMetricsOptions): CoordinatorMetrics {
  const registry = new Registry();
  const {heartbeatAges, workerCounts} = options;
  const collectors: Collectors<typeof COORDINATOR_METRICS> = {};
  if (workerCounts) {
    collectors.workersRegistered = () => m.workersRegistered.set(workerCounts().registered);
    collectors.workersAlive = () => m.workersAlive.set(workerCounts().alive);
  }
  if (heartbeatAges) {
    collectors.heartbeatAgeSeconds = () => {
      m.heartbeatAgeSeconds.reset();
      for (const [worker, seconds] of heartbeatAges()) m.heartbeatAgeSeconds.set({worker}, seconds);
    };
  }
  const m = build(COORDINATOR_METRICS, registry, collectors);
  m.info.set({version: options.version}, 1);
  const setJobState = (state: JobStateLabel): void => {
    for (const s of JOB_STATES) m.jobState.set({state: s}, s === state ? 1 : 0);
  };
  setJobState('idle');
  if (options.defaultMetrics !== false) collectDefaultMetrics({register: registry});
  return {...m, registry, setJobState};
}

export interface WorkerIdentity {
  /** Worker id as the coordinator knows it. */
  worker: string;
  /** Rank in the current job's ring; unknown (empty label) until a job starts. */
  rank?: number;
  /** tfjs backend in use: tensorflow, webgpu, wasm or cpu. */
  backend: string;
}

export type WorkerMetrics = BuiltAll<typeof WORKER_METRICS> & {
  readonly registry: Registry;
  /** Updates the default labels, e.g. when a job assigns a rank (later scrapes show the new labels). */
  setIdentity(identity: WorkerIdentity): void;
};

export interface WorkerMetricsOptions extends CommonOptions, WorkerIdentity {
  /** Device description for the info metric (e.g. "NVIDIA H100", "cpu"). */
  device: string;
  /** tf.memory(), read at each scrape (pass `() => tf.memory()`); the metrics module does not import tfjs. */
  tfjsMemory?: () => {numTensors: number; numBytes: number};
}

function identityLabels(id: WorkerIdentity): Record<(typeof WORKER_DEFAULT_LABELS)[number], string> {
  return {worker: id.worker, rank: id.rank === undefined ? '' : String(id.rank), backend: id.backend};
}

export function createWorkerMetrics(options: WorkerMetricsOptions): WorkerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels(identityLabels(options));
  const {tfjsMemory} = options;
  const collectors: Collectors<typeof WORKER_METRICS> = {};
  if (tfjsMemory) {
    collectors.tfjsTensors = () => m.tfjsTensors.set(tfjsMemory().numTensors);
    collectors.tfjsMemoryBytes = () => m.tfjsMemoryBytes.set(tfjsMemory().numBytes);
  }
  const m = build(WORKER_METRICS, registry, collectors);
  m.info.set({version: options.version, device: options.device}, 1);
  if (options.defaultMetrics !== false) collectDefaultMetrics({register: registry});
  return {...m, registry, setIdentity: (id) => registry.setDefaultLabels(identityLabels(id))};
}
