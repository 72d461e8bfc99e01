import assert from 'node:assert/strict';
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {after, test} from 'node:test';

import {localWorkerMetricsPort, METRICS_PORTS} from '../../src/metrics/index.js';
import {promtool, skipWithoutPromtool} from '../metrics/promtool.js';
import {k8sObject, loadYaml, type Manifest, ROOT} from './helpers.js';

const PROM = 'deploy/prometheus';
const RULES = join(ROOT, PROM, 'rules/dtrain-alerts.yml');
const tmp = mkdtempSync(join(tmpdir(), 'dtrain-prom-'));
after(() => rmSync(tmp, {recursive: true, force: true}));

/** promtool must succeed; its output is the assertion message. */
function promtoolOk(args: string[]): string {
  const r = promtool(args);
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.output}`);
  return r.output;
}

test('alert rules: promtool check rules accepts them; promtool test rules proves each alert fires (and stays quiet when healthy)', {skip: skipWithoutPromtool()}, () => {
  assert.match(promtoolOk(['check', 'rules', RULES]), /SUCCESS: 8 rules found/);
  assert.match(promtoolOk(['test', 'rules', join(ROOT, PROM, 'tests/dtrain-alerts.test.yml')]), /SUCCESS/);
});

test('local scrape config: targets on the documented default ports', () => {
  const cfg = loadYaml(`${PROM}/prometheus.local.yml`);
  const byRole = new Map(cfg.scrape_configs.map((s: Manifest) => [s.static_configs[0].labels.dtrain_role, s.static_configs[0].targets]));
  assert.deepEqual(byRole.get('coordinator'), [`127.0.0.1:${METRICS_PORTS.coordinator}`]);
  assert.deepEqual(byRole.get('worker'), [0, 1, 2, 3].map((i) => `127.0.0.1:${localWorkerMetricsPort(i)}`));
});

test('Kubernetes scrape config: pod discovery in the manifests\' namespace, the metrics port name, dtrain_role', () => {
  const cfg = loadYaml(`${PROM}/prometheus.k8s.yml`);
  const job = cfg.scrape_configs[0];
  assert.deepEqual(job.kubernetes_sd_configs, [{role: 'pod', namespaces: {names: [k8sObject('Namespace', 'dtrain').metadata.name]}}]);
  const relabel = job.relabel_configs as Manifest[];
  const keep = (label: string) => relabel.find((r) => r.action === 'keep' && r.source_labels[0] === label)?.regex;
  assert.equal(keep('__meta_kubernetes_pod_container_port_name'), 'metrics');
  assert.equal(keep('__meta_kubernetes_pod_label_app_kubernetes_io_name'), 'dtrain');
  assert.ok(relabel.some((r) => r.target_label === 'dtrain_role' && r.source_labels[0] === '__meta_kubernetes_pod_label_app_kubernetes_io_component'));
});

test('promtool check config: local and Kubernetes scrape configs', {skip: skipWithoutPromtool()}, () => {
  promtoolOk(['check', 'config', join(ROOT, PROM, 'prometheus.local.yml')]);
  const file = join(ROOT, PROM, 'prometheus.k8s.yml');
  const direct = promtool(['check', 'config', file]);
  if (direct.status === 0) return;
  // Debian builds Prometheus without Kubernetes service discovery ("field kubernetes_sd_configs not
  // found"): check everything else by swapping in a static target. JSON is YAML, so no serializer needed.
  assert.match(direct.output, /field kubernetes_sd_configs not found/, direct.output);
  const cfg = loadYaml(`${PROM}/prometheus.k8s.yml`);
  const {kubernetes_sd_configs: _sd, ...rest} = cfg.scrape_configs[0];
  const copy = {...cfg, rule_files: [RULES], scrape_configs: [{...rest, static_configs: [{targets: ['pod.example:9400']}]}]};
  writeFileSync(join(tmp, 'k8s.json.yml'), JSON.stringify(copy));
  promtoolOk(['check', 'config', join(tmp, 'k8s.json.yml')]);
});

test('every target gets dtrain_role (coordinator | worker), which the rules and the dashboard select on', () => {
  const local = loadYaml(`${PROM}/prometheus.local.yml`).scrape_configs.map((s: Manifest) => s.static_configs[0].labels.dtrain_role);
  assert.deepEqual(local.sort(), ['coordinator', 'worker']);
  const pm = k8sObject('PodMonitor', 'dtrain');
  assert.ok(pm.spec.podMetricsEndpoints[0].relabelings.some((r: Manifest) => r.targetLabel === 'dtrain_role'));
  const rules = loadYaml(`${PROM}/rules/dtrain-alerts.yml`).groups[0].rules as Manifest[];
  for (const r of rules) {
    assert.match(r.alert, /^Dtrain[A-Za-z]+$/);
    assert.ok(['critical', 'warning'].includes(r.labels.severity), `${r.alert} severity`);
    assert.ok(r.annotations.summary && r.annotations.description, `${r.alert} annotations`);
  }
  for (const name of ['DtrainWorkerDown', 'DtrainJobStalled', 'DtrainLossNaN', 'DtrainLossRising', 'DtrainAllReduceSlow']) assert.ok(rules.some((r) => r.alert === name), name);
});
