/**
 * The real thing: a standing local cluster with its Prometheus (`cluster up --detach --prometheus`,
 * free ports, Debian's prometheus scraping every process each second, alert rules loaded), a
 * short `dtrain run --coordinator …` on it, then every PromQL expression the dashboard and the alert
 * rules ship, evaluated by that Prometheus. A panel expression (or dashboard variable) returning no
 * series fails, naming it. Alert expressions rightly return nothing on a healthy run, so each must
 * evaluate without error and each of its operands (conditionOperands) must return series.
 * Needs dist/ (npm run build) and `prometheus` on PATH (skips without, fails under CI=true).
 */
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {existsSync} from 'node:fs';
import {mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {freeLoopbackPort} from '../allreduce/helpers.js';
import {runDtrain} from '../cluster/helpers.js';
import {conditionOperands, ROOT, shippedPromQL, toEvaluable} from '../deploy/promql.js';
import {PROMTOOL_INSTALL} from './promtool.js';

const built = existsSync(path.join(ROOT, 'dist/commands/run.js'));
const hasPrometheus = spawnSync('prometheus', ['--version'], {encoding: 'utf8'}).status === 0;

function skipReason(): false | string {
  if (!built) return 'dist/ not built (npm run build)';
  if (hasPrometheus) return false;
  const why = `prometheus not found on PATH — install it: ${PROMTOOL_INSTALL}`;
  if (process.env.CI === 'true' || process.env.DTRAIN_REQUIRE_PROMTOOL === '1') throw new Error(why);
  return why;
}

let dir = '';
let env: NodeJS.ProcessEnv = {};
let promUrl = '';

const dtrain = (...args: string[]) => runDtrain(args, {cwd: dir, env});

type Series = {metric: Record<string, string>; value: [number, string]};

async function api<T>(pathAndQuery: string): Promise<T> {
  const res = await fetch(`${promUrl}${pathAndQuery}`);
  const body = (await res.json()) as {status: string; data: T; error?: string};
  assert.equal(body.status, 'success', `${pathAndQuery}: ${body.error}`);
  return body.data;
}

const query = async (expr: string): Promise<Series[]> => (await api<{result: Series[]}>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result;

async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe('Prometheus scrapes a real dtrain run: every shipped PromQL expression returns data', {skip: skipReason()}, () => {
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dtrain-prom-e2e-'));
    env = {DTRAIN_CLUSTER_DIR: path.join(dir, 'cluster'), DTRAIN_CACHE_DIR: path.join(dir, 'cache')};
    // Free ports everywhere: the test must not depend on (or disturb) a cluster on the default ports.
    // `cluster up --prometheus` writes the scrape config from the processes' metrics URLs and starts Prometheus.
    const port = await freeLoopbackPort();
    const up = await dtrain('cluster', 'up', '--workers', '2', '--detach', '--port', '0', '--metrics-port', '0', '--backend', 'wasm', '--prometheus', '--prometheus-port', String(port), '--scrape-interval', '1', '--json');
    assert.equal(up.code, 0, up.stderr);
    const state = JSON.parse(up.stdout) as {processes: Array<{role: string; metricsUrl: string}>; prometheus: {url: string}};
    assert.equal(state.processes.length, 3, up.stdout);
    for (const p of state.processes) assert.match(p.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, `${p.role} metricsUrl`);
    promUrl = state.prometheus.url;
    assert.equal(promUrl, `http://127.0.0.1:${port}`);
    await waitFor('every target to be up', 20_000, async () => (await query('up == 1')).length === 3);
    assert.ok((await api<{groups: unknown[]}>('/api/v1/rules')).groups.length > 0, 'the alert rules are loaded');
  });

  after(async () => {
    if (dir) {
      const down = await dtrain('cluster', 'down', '--json');
      await rm(dir, {recursive: true, force: true});
      assert.equal((JSON.parse(down.stdout) as {stopped: number[]}).stopped.length, 4, 'cluster down stops Prometheus too');
    }
  });

  test('a short run on the scraped cluster, then every dashboard and alert expression', async (t) => {
    const address = JSON.parse((await dtrain('cluster', 'status', '--json')).stdout).address as string;
    const run = await dtrain('run', '--coordinator', address, '--workers', '2', '--data', 'synthetic', '--epochs', '2', '--train-limit', '128', '--test-limit', '64', '--batch-size', '32', '--backend', 'wasm', '--run-dir', path.join(dir, 'run'), '--json');
    assert.equal(run.code, 0, run.stderr);
    // The run is over when Prometheus has seen the job finish; a few more scrapes give rates two points after it.
    await waitFor('Prometheus to scrape the finished job', 20_000, async () => (await query('dtrain_jobs_finished_total{outcome="completed"} >= 1')).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const scrapes = await query('min(count_over_time(up[5m]))');
    assert.ok(Number(scrapes[0]?.value[1]) >= 5, `every target scraped at least 5 times (min ${scrapes[0]?.value[1]})`);

    // The wiring, not just the presence: values the run fixes (2 epochs × 4 steps of 32 images, 64 test images per epoch).
    const value = async (expr: string) => (await query(expr)).map((r) => Number(r.value[1]));
    assert.deepEqual(await value('dtrain_job_epoch'), [2]);
    assert.deepEqual(await value('dtrain_job_planned_epochs'), [2]);
    assert.deepEqual(await value('dtrain_job_step'), [8]);
    assert.deepEqual(await value('dtrain_job_state{state="completed"}'), [1]);
    assert.deepEqual(await value('dtrain_workers_alive'), [2]);
    assert.deepEqual(await value('sum(dtrain_worker_images_processed_total{phase="train"})'), [256]);
    assert.deepEqual(await value('sum(dtrain_worker_images_processed_total{phase="eval"})'), [128]);
    assert.deepEqual(await value('sum(dtrain_worker_step_duration_seconds_count)'), [16]);
    assert.deepEqual((await query('dtrain_worker_info')).map((r) => r.metric.rank).sort(), ['0', '1']);
    for (const direction of ['sent', 'received']) assert.ok((await value(`dtrain_worker_allreduce_bytes_total{direction="${direction}"} > 0`)).length === 2, `both workers count bytes ${direction}`);
    assert.equal((await value('dtrain_worker_allreduce_peer_wait_seconds_total > 0')).length, 2, 'both workers waited for peers at some point');

    const shipped = shippedPromQL();
    let evaluated = 0;
    for (const e of shipped) {
      await t.test(`${e.where}: ${e.expr}`, async () => {
        if (e.kind === 'variable') {
          const [, metric, label] = /^\s*label_values\(\s*([\w:]+)\s*,\s*(\w+)\s*\)\s*$/.exec(e.expr) ?? [];
          assert.ok(metric, `not a label_values(metric, label) query: ${e.expr}`);
          const values = await api<string[]>(`/api/v1/label/${label}/values?match[]=${encodeURIComponent(metric)}`);
          assert.ok(values.length > 0, `${e.where}: no values`);
        } else {
          const expr = toEvaluable(e.expr);
          const result = await query(expr);
          if (e.kind === 'panel') assert.ok(result.length > 0, `${e.where} returned no series: ${expr}`);
          else for (const operand of new Set(conditionOperands(expr))) assert.ok((await query(operand)).length > 0, `${e.where}: operand returned no series: ${operand}`);
        }
        evaluated++;
      });
    }
    assert.equal(evaluated, shipped.length, `${shipped.length - evaluated} of ${shipped.length} expressions returned no data (see the failed subtests)`);
    t.diagnostic(`${evaluated} expressions evaluated against Prometheus (${shipped.filter((e) => e.kind === 'panel').length} panel, ${shipped.filter((e) => e.kind === 'variable').length} variable, ${shipped.filter((e) => e.kind === 'rule').length} rule)`);
  });
});
