import assert from 'node:assert/strict';
import {test} from 'node:test';

import {buildDashboard} from '../../src/metrics/dashboard.js';
import {seriesNames} from '../../src/metrics/index.js';
import {GENERATED} from './generate.js';
import {k8sObject, loadYaml, readDeploy} from './helpers.js';
import {bracketProblem, metricNamesIn, shippedPromQL} from './promql.js';

const DASHBOARD = 'deploy/grafana/dashboards/dtrain.json';

test('generated files match src/metrics/dashboard.ts (else: node --import tsx test/deploy/generate.ts)', () => {
  for (const [path, render] of Object.entries(GENERATED)) assert.equal(readDeploy(path), render(), `${path} is stale`);
});

test('dashboard: valid JSON for file provisioning — datasource variable, no ${DS_*} import placeholders', () => {
  const text = readDeploy(DASHBOARD);
  const d = JSON.parse(text);
  assert.doesNotMatch(text, /\$\{DS_|__inputs|__requires/, 'import placeholders break provisioning (grafana/grafana#10786)');
  assert.equal(d.uid, 'dtrain');
  const vars = d.templating.list;
  assert.ok(vars.some((v: {name: string; type: string; query: string}) => v.name === 'datasource' && v.type === 'datasource' && v.query === 'prometheus'));
  const ids = new Set<number>();
  const cells = new Set<string>();
  for (const p of d.panels) {
    assert.ok(!ids.has(p.id), `duplicate panel id ${p.id}`);
    ids.add(p.id);
    assert.deepEqual(p.datasource, {type: 'prometheus', uid: '${datasource}'}, p.title);
    assert.ok(p.targets.length > 0 && p.description, p.title);
    const {x, y, w, h} = p.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24, `${p.title}: gridPos`);
    for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
      assert.ok(!cells.has(`${i},${j}`), `${p.title} overlaps another panel`);
      cells.add(`${i},${j}`);
    }
  }
});

test('dashboard has the panels issue 3 asks for', () => {
  const titles = (buildDashboard().panels as {title: string}[]).map((p) => p.title);
  for (const want of ['Loss', 'Accuracy', 'Learning rate', 'Images/s (all workers)', 'Images/s per worker', 'Step time', 'All-reduce latency', 'All-reduce bandwidth', 'Waiting for peers', 'Worker health', 'Test accuracy per class', 'tfjs tensor memory']) {
    assert.ok(titles.includes(want), `panel ${want}`);
  }
});

test('every PromQL expression (dashboard and alert rules): balanced brackets, only metrics dtrain defines (or up)', () => {
  const known = seriesNames().add('up');
  const exprs = shippedPromQL();
  assert.ok(exprs.filter((e) => e.kind === 'panel').length >= 20 && exprs.some((e) => e.kind === 'rule'));
  for (const e of exprs) {
    assert.equal(bracketProblem(e.expr), undefined, `${e.where}: ${e.expr}`);
    const names = metricNamesIn(e.expr);
    assert.ok(names.length > 0, `${e.where} selects no metric: ${e.expr}`);
    for (const n of names) assert.ok(known.has(n), `${e.where}: unknown metric ${n}`);
  }
});

test('the PromQL scanners see through string literals and catch unbalanced or unterminated input', () => {
  assert.equal(bracketProblem('sum(rate(x{a="(}"}[5m]))'), undefined);
  assert.match(bracketProblem('sum(rate(x[5m])') ?? '', /unclosed \(/);
  assert.match(bracketProblem('x{a="b}') ?? '', /unterminated string/);
  assert.match(bracketProblem('x)') ?? '', /unbalanced \)/);
  assert.deepEqual(metricNamesIn('rate(dtrain_a_total{job="not_a_metric"}[1m]) / dtrain_b'), ['dtrain_a_total', 'dtrain_b']);
});

test('provisioning YAML: file provider and a Prometheus datasource; k8s ConfigMap carries the same dashboard for the sidecar', () => {
  const providers = loadYaml('deploy/grafana/provisioning/dashboards/dtrain.yaml');
  assert.equal(providers.apiVersion, 1);
  assert.equal(providers.providers[0].type, 'file');
  assert.match(providers.providers[0].options.path, /^\//);
  const ds = loadYaml('deploy/grafana/provisioning/datasources/prometheus.yaml');
  assert.equal(ds.datasources[0].type, 'prometheus');
  assert.match(ds.datasources[0].url, /^http:\/\/127\.0\.0\.1:9090$/);
  const cm = k8sObject('ConfigMap', 'dtrain-grafana-dashboard');
  assert.equal(cm.metadata.labels.grafana_dashboard, '1');
  assert.deepEqual(JSON.parse(cm.data['dtrain.json']), JSON.parse(readDeploy(DASHBOARD)));
});
