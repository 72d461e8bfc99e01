import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {createServer} from 'node:net';
import {after, test} from 'node:test';

import type {Counter, Gauge, Histogram} from 'prom-client';

import {
  COORDINATOR_METRICS,
  createCoordinatorMetrics,
  createWorkerMetrics,
  JOB_STATES,
  METRIC_CATALOG,
  type MetricSpec,
  type MetricsServer,
  startMetricsServer,
  WORKER_METRICS,
} from '../../src/metrics/index.js';
import {jobMetricsObserver} from '../../src/coordinator/metrics.js';
import {JobAccepted, JobSpec} from '../../src/gen/dtrain.js';
import {promtool, skipWithoutPromtool} from './promtool.js';

const servers: MetricsServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

/** Touches one metric with a value for every label, so the scrape shows each series at least once. */
function touch(spec: MetricSpec, metric: unknown): void {
  const labels = Object.fromEntries(spec.labels.map((l) => [l, `sample_${l}`]));
  if (spec.kind === 'counter') (metric as Counter<string>).inc(labels, 2);
  else if (spec.kind === 'gauge') (metric as Gauge<string>).set(labels, 0.5);
  else (metric as Histogram<string>).observe(labels, 0.3);
}

function everyMetricSetOnce() {
  const coordinator = createCoordinatorMetrics({version: '0.1.0', heartbeatAges: () => [['w-0', 1.25]]});
  const worker = createWorkerMetrics({version: '0.1.0', worker: 'w-0', rank: 0, backend: 'wasm', device: 'cpu', tfjsMemory: () => ({numTensors: 42, numBytes: 4096})});
  for (const [key, spec] of Object.entries(COORDINATOR_METRICS)) touch(spec, coordinator[key as keyof typeof COORDINATOR_METRICS]);
  for (const [key, spec] of Object.entries(WORKER_METRICS)) touch(spec, worker[key as keyof typeof WORKER_METRICS]);
  return {coordinator, worker};
}

async function scrape(url: string): Promise<{text: string; type: string | null}> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  return {text: await res.text(), type: res.headers.get('content-type')};
}

/** prom-client's default metrics that promlint flags (gauges named `_total`); not ours to rename. */
const DEFAULT_METRIC_FINDINGS = new Set(['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']);

/** Keeps only the `dtrain_` families of an exposition (HELP, TYPE and samples). */
function dtrainOnly(text: string): string {
  return `${text
    .split('\n')
    .filter((l) => /^(# (HELP|TYPE) )?dtrain_/.test(l))
    .join('\n')}\n`;
}

test('metric names follow Prometheus conventions: dtrain_ prefix, unique, _total only on counters, help text', () => {
  const names = METRIC_CATALOG.map((m) => m.name);
  assert.equal(new Set(names).size, names.length, 'duplicate metric name');
  for (const m of METRIC_CATALOG) {
    assert.match(m.name, /^dtrain_[a-z0-9_]+$/, m.name);
    assert.equal(m.name.endsWith('_total'), m.kind === 'counter', `${m.name}: _total iff counter`);
    assert.ok(m.help.length > 20, `${m.name}: help text`);
    if (m.kind === 'histogram') assert.ok(m.name.endsWith('_seconds') && (m.buckets?.length ?? 0) >= 10, `${m.name}: seconds with chosen buckets`);
  }
});

/** Both registries with every metric set, served over HTTP and scraped back. */
async function scrapeEveryMetric(): Promise<{role: 'coordinator' | 'worker'; text: string}[]> {
  const {coordinator, worker} = everyMetricSetOnce();
  const out: {role: 'coordinator' | 'worker'; text: string}[] = [];
  for (const [role, registry] of [['coordinator', coordinator.registry], ['worker', worker.registry]] as const) {
    const server = await startMetricsServer(registry, {port: 0});
    servers.push(server);
    const {text, type} = await scrape(server.url);
    assert.match(type ?? '', /^text\/plain; version=0\.0\.4/);
    out.push({role, text});
  }
  return out;
}

test('every metric set once is served on /metrics by the registry of its role', async () => {
  for (const {role, text} of await scrapeEveryMetric()) {
    for (const m of METRIC_CATALOG) {
      const re = new RegExp(`^${m.name}(_bucket)?[{ ]`, 'm');
      if (m.role === role) assert.match(text, re, `${m.name} scraped`);
      else assert.doesNotMatch(text, re, `${m.name} only on the ${m.role}`);
    }
  }
});

test('`promtool check metrics` finds nothing in dtrain_ metrics (process defaults: only the known prom-client findings)', {skip: skipWithoutPromtool()}, async () => {
  for (const {role, text} of await scrapeEveryMetric()) {
    // Ours alone: promtool must be silent and exit 0.
    const own = promtool(['check', 'metrics'], dtrainOnly(text));
    assert.equal(own.output.trim(), '', `${role}: promtool on dtrain_ metrics:\n${own.output}`);
    assert.equal(own.status, 0);
    // Whole scrape (process default metrics included): only the known prom-client findings.
    const findings = promtool(['check', 'metrics'], text).output.split('\n').filter(Boolean);
    for (const f of findings) assert.ok(DEFAULT_METRIC_FINDINGS.has(f.split(' ')[0]), `${role}: unexpected promtool finding: ${f}`);
  }
});

test('worker series carry worker/rank/backend default labels; setIdentity relabels; collect callbacks run at scrape time', async () => {
  let tensors = 7;
  const w = createWorkerMetrics({version: '9.9.9', worker: 'w-3', backend: 'webgpu', device: 'Vulkan lavapipe', defaultMetrics: false, tfjsMemory: () => ({numTensors: tensors, numBytes: tensors * 4})});
  assert.match(await w.registry.metrics(), /^dtrain_worker_info\{version="9\.9\.9",device="Vulkan lavapipe",worker="w-3",rank="",backend="webgpu"\} 1$/m);
  w.setIdentity({worker: 'w-3', rank: 2, backend: 'webgpu'});
  tensors = 11;
  const text = await w.registry.metrics();
  assert.match(text, /^dtrain_worker_tfjs_tensors\{worker="w-3",rank="2",backend="webgpu"\} 11$/m);
  assert.match(text, /^dtrain_worker_tfjs_memory_bytes\{worker="w-3",rank="2",backend="webgpu"\} 44$/m);
  assert.doesNotMatch(text, /^process_|^nodejs_/m, 'defaultMetrics: false');
});

test('coordinator: job state is one-hot over JOB_STATES; heartbeat ages follow the callback (gone workers vanish)', async () => {
  let ages: [string, number][] = [['a', 1], ['b', 2]];
  const c = createCoordinatorMetrics({version: '0.1.0', defaultMetrics: false, heartbeatAges: () => ages});
  c.setJobState('running');
  let text = await c.registry.metrics();
  for (const s of JOB_STATES) assert.match(text, new RegExp(`^dtrain_job_state\\{state="${s}"\\} ${s === 'running' ? 1 : 0}$`, 'm'));
  assert.match(text, /^dtrain_heartbeat_age_seconds\{worker="b"\} 2$/m);
  ages = [['a', 3]];
  text = await c.registry.metrics();
  assert.match(text, /^dtrain_heartbeat_age_seconds\{worker="a"\} 3$/m);
  assert.doesNotMatch(text, /worker="b"/);
});

test('metrics server: read-only (GET/HEAD /metrics and /healthz only, others 405, unknown paths 404), port 0, clear error when the port is in use', async () => {
  const c = createCoordinatorMetrics({version: '0.1.0', defaultMetrics: false});
  const server = await startMetricsServer(c.registry, {port: 0, host: '127.0.0.1'});
  servers.push(server);
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  assert.ok(server.port > 0);
  const base = server.url.replace(/\/metrics$/, '');
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/metrics?x=1`)).status, 200);
  assert.equal((await fetch(`${base}/`)).status, 404);
  assert.equal((await fetch(`${base}/metrics/../admin`)).status, 404);
  const head = await fetch(server.url, {method: 'HEAD'});
  assert.equal(head.status, 200);
  assert.match(head.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  assert.equal(await head.text(), '');
  const post = await fetch(server.url, {method: 'POST', body: 'x'});
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS']) assert.equal((await fetch(server.url, {method})).status, 405, method);
  assert.equal((await fetch(`${base}/healthz`, {method: 'DELETE'})).status, 405);
  assert.equal((await fetch(`${base}/admin`, {method: 'POST', body: 'x'})).status, 404);

  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const busy = (blocker.address() as {port: number}).port;
  try {
    await assert.rejects(startMetricsServer(c.registry, {port: busy, host: '127.0.0.1'}), /cannot serve metrics on 127\.0\.0\.1:\d+: the port is in use \(pick another --metrics-port/);
  } finally {
    blocker.close();
  }
});

test('docs/observability.md documents every metric', () => {
  const doc = readFileSync(new URL('../../docs/observability.md', import.meta.url), 'utf8');
  for (const m of METRIC_CATALOG) assert.ok(doc.includes(`| \`${m.name}\` | ${m.kind} | ${m.role} |`), `${m.name} missing from the docs table`);
});

test('coordinator: an accepted job sets dtrain_job_grad_compression one-hot from its spec', async () => {
  const c = createCoordinatorMetrics({version: '0.1.0', defaultMetrics: false});
  const series = async () => [...(await c.registry.metrics()).matchAll(/^dtrain_job_grad_compression\{compression="(\w+)"\} (\d)$/gm)].map((m) => `${m[1]}=${m[2]}`).sort();
  jobMetricsObserver(c, JobSpec.fromPartial({epochs: 2, hyper: {lr: 0.1, gradCompression: 'fp16'}}))({accepted: JobAccepted.fromPartial({startEpoch: 0, stepsPerEpoch: 4})});
  assert.deepEqual(await series(), ['fp16=1', 'none=0']);
  jobMetricsObserver(c, JobSpec.fromPartial({epochs: 2, hyper: {lr: 0.1}}))({accepted: JobAccepted.fromPartial({startEpoch: 0, stepsPerEpoch: 4})});
  assert.deepEqual(await series(), ['fp16=0', 'none=1'], "'' (an older client) is none");
});
