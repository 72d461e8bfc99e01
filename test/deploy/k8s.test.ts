/**
 * The kustomize base, validated offline: there is no Kubernetes cluster (and no kubectl or Docker
 * engine) where these tests run, so objects are checked against the Kubernetes OpenAPI schemas
 * bundled in kubernetes-models, and consistency across objects is checked here.
 */
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {test} from 'node:test';

import {Deployment, StatefulSet} from 'kubernetes-models/apps/v1';
import {Job} from 'kubernetes-models/batch/v1';
import {ConfigMap, Namespace, Secret, Service} from 'kubernetes-models/v1';

import {METRICS_PORTS} from '../../src/metrics/index.js';
import {argFlags, K8S_DIR, k8sFiles, k8sObject, loadYaml, type Manifest, ROOT, selects} from './helpers.js';

const MODELS: Record<string, new (data: Manifest) => {validate(): void}> = {
  'v1/Namespace': Namespace,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'batch/v1/Job': Job,
};

const coordinator = () => k8sObject('Deployment', 'dtrain-coordinator');
const workers = () => k8sObject('StatefulSet', 'dtrain-worker');
const runJob = () => k8sObject('Job', 'dtrain-run');
const container = (workload: Manifest): Manifest => workload.spec.template.spec.containers[0];
const portOf = (c: Manifest, name: string): number | undefined => c.ports?.find((p: Manifest) => p.name === name)?.containerPort;

/** PodMonitor is a prometheus-operator CRD, unknown to kubernetes-models: checked by shape. */
function validatePodMonitor(o: Manifest): void {
  assert.equal(o.apiVersion, 'monitoring.coreos.com/v1');
  assert.ok(o.metadata?.name && o.spec?.selector?.matchLabels, 'PodMonitor: name and spec.selector.matchLabels');
  assert.ok(Array.isArray(o.spec.podMetricsEndpoints) && o.spec.podMetricsEndpoints.length > 0);
  for (const e of o.spec.podMetricsEndpoints) {
    assert.equal(typeof e.port, 'string', 'podMetricsEndpoints[].port is a port name');
    assert.match(e.interval, /^\d+[smh]$/);
    for (const r of e.relabelings ?? []) assert.ok(Array.isArray(r.sourceLabels) && typeof r.targetLabel === 'string');
  }
}

test('kustomization.yaml lists every manifest file, and each listed file exists', () => {
  const k = loadYaml(`${K8S_DIR}/kustomization.yaml`);
  assert.equal(k.kind, 'Kustomization');
  assert.deepEqual([...k.resources].sort(), k8sFiles().map((f) => f.file));
  assert.equal(k.namespace, k8sObject('Namespace', 'dtrain').metadata.name);
});

test('every object validates against the Kubernetes schema (kubernetes-models; PodMonitor by shape)', () => {
  let count = 0;
  for (const {file, objects} of k8sFiles()) {
    assert.equal(objects.length, 1, `${file}: one object per file`);
    for (const o of objects) {
      count++;
      if (o.kind === 'PodMonitor') {
        validatePodMonitor(o);
        continue;
      }
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      assert.ok(Model, `${file}: no model for ${o.apiVersion} ${o.kind}`);
      assert.doesNotThrow(() => new Model(o).validate(), `${file}: ${o.kind} ${o.metadata?.name}`);
    }
  }
  assert.equal(count, 10);
});

test('the validator does catch mistakes (a string containerPort, a missing selector)', () => {
  const bad = structuredClone(coordinator());
  bad.spec.template.spec.containers[0].ports[0].containerPort = '7400';
  assert.throws(() => new Deployment(bad).validate(), /containerPort/);
  const noSelector = structuredClone(workers());
  delete noSelector.spec.selector;
  assert.throws(() => new StatefulSet(noSelector).validate(), /selector/);
});

test('selectors match pod labels; Services and the PodMonitor reach ports that exist', () => {
  const workloads = [coordinator(), workers(), runJob()];
  for (const w of [coordinator(), workers()]) assert.ok(selects(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${w.metadata.name} selector`);
  for (const name of ['dtrain-coordinator', 'dtrain-workers']) {
    const svc = k8sObject('Service', name);
    const targets = workloads.filter((w) => selects(svc.spec.selector, w.spec.template.metadata.labels));
    assert.equal(targets.length, 1, `Service ${name} selects exactly one workload`);
    for (const p of svc.spec.ports) assert.equal(portOf(container(targets[0]), p.targetPort), p.port, `Service ${name} port ${p.name}`);
  }
  const pm = k8sObject('PodMonitor', 'dtrain');
  const scraped = workloads.filter((w) => selects(pm.spec.selector.matchLabels, w.spec.template.metadata.labels) && portOf(container(w), pm.spec.podMetricsEndpoints[0].port));
  assert.deepEqual(scraped.map((w) => w.metadata.name), ['dtrain-coordinator', 'dtrain-worker']);
});

test('the ports the programs are told to listen on are the container ports, probes and annotations', () => {
  const c = container(coordinator());
  const cf = argFlags(c.args);
  assert.equal(Number(cf.get('port')), portOf(c, 'grpc'));
  assert.equal(Number(cf.get('metrics-port')), portOf(c, 'metrics'));
  assert.equal(portOf(c, 'metrics'), METRICS_PORTS.coordinator);
  const w = container(workers());
  assert.equal(Number(argFlags(w.args).get('metrics-port')), portOf(w, 'metrics'));
  for (const wl of [coordinator(), workers()]) {
    const ct = container(wl);
    assert.equal(cf.get('host'), '0.0.0.0');
    assert.equal(argFlags(ct.args).get('metrics-host'), '0.0.0.0', `${wl.metadata.name}: metrics reachable from Prometheus`);
    assert.equal(Number(wl.spec.template.metadata.annotations['prometheus.io/port']), portOf(ct, 'metrics'));
    assert.equal(wl.spec.template.metadata.annotations['prometheus.io/scrape'], 'true');
    for (const probe of [ct.readinessProbe, ct.livenessProbe]) {
      const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
      assert.ok(portOf(ct, port), `${wl.metadata.name}: probe port ${port}`);
      if (probe.httpGet) assert.equal(probe.httpGet.path, '/healthz');
    }
  }
});

test('workers and the Job reach the coordinator through the Service that exists, on its gRPC port', () => {
  const svc = k8sObject('Service', 'dtrain-coordinator');
  const grpc = svc.spec.ports.find((p: Manifest) => p.name === 'grpc').port;
  for (const wl of [workers(), runJob()]) assert.equal(argFlags(container(wl).args).get('coordinator'), `${svc.metadata.name}:${grpc}`, wl.metadata.name);
  assert.equal(container(coordinator()).args[0], 'coordinator');
  assert.equal(container(workers()).args[0], 'worker');
  assert.equal(container(runJob()).args[0], 'run');
});

test('worker StatefulSet: Parallel, headless publishNotReadyAddresses Service, one GPU, probes, resources; replicas = DTRAIN_WORKERS', () => {
  const sts = workers();
  assert.equal(sts.spec.podManagementPolicy, 'Parallel');
  const headless = k8sObject('Service', sts.spec.serviceName);
  assert.equal(headless.spec.clusterIP, 'None');
  assert.equal(headless.spec.publishNotReadyAddresses, true);
  const c = container(sts);
  assert.equal(c.resources.limits['nvidia.com/gpu'], 1);
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
  assert.ok(c.readinessProbe && c.livenessProbe);
  assert.equal(Number(k8sObject('ConfigMap', 'dtrain-config').data.DTRAIN_WORKERS), sts.spec.replicas);
  assert.equal(coordinator().spec.replicas, 1);
});

test('every $(VAR) in args and every envFrom/secretKeyRef resolves to a ConfigMap, Secret or env entry that exists', () => {
  const config = k8sObject('ConfigMap', 'dtrain-config');
  const secret = k8sObject('Secret', 'dtrain-cluster-token');
  const sources: Record<string, Record<string, unknown>> = {[`cm/${config.metadata.name}`]: config.data, [`secret/${secret.metadata.name}`]: secret.stringData};
  for (const wl of [coordinator(), workers(), runJob()]) {
    for (const c of [...(wl.spec.template.spec.initContainers ?? []), ...wl.spec.template.spec.containers]) {
      const available = new Set<string>((c.env ?? []).map((e: Manifest) => e.name));
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) assert.ok(ref.key in (sources[`secret/${ref.name}`] ?? {}), `${wl.metadata.name}/${c.name}: secretKeyRef ${ref.name}/${ref.key} exists`);
      }
      for (const f of c.envFrom ?? []) {
        const data = sources[f.configMapRef ? `cm/${f.configMapRef.name}` : `secret/${f.secretRef.name}`];
        assert.ok(data, `${wl.metadata.name}/${c.name}: envFrom source exists`);
        for (const k of Object.keys(data)) available.add(k);
      }
      for (const ref of [...(c.command ?? []), ...(c.args ?? [])].join(' ').matchAll(/\$\(([A-Z_]+)\)/g)) assert.ok(available.has(ref[1]), `${wl.metadata.name}/${c.name}: $(${ref[1]})`);
    }
  }
  assert.ok('DTRAIN_CLUSTER_TOKEN' in secret.stringData);
});

test('the coordinator, every worker and the run Job read the cluster token from the Secret as DTRAIN_TOKEN', () => {
  for (const wl of [coordinator(), workers(), runJob()]) {
    const env = (container(wl).env ?? []).find((e: Manifest) => e.name === 'DTRAIN_TOKEN');
    assert.deepEqual(env?.valueFrom?.secretKeyRef, {name: 'dtrain-cluster-token', key: 'DTRAIN_CLUSTER_TOKEN'}, wl.metadata.name);
  }
});

test('images: CPU image for coordinator and Job, GPU image for workers, tagged (and labelled) with the package version', () => {
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  for (const wl of [coordinator(), workers(), runJob()]) assert.equal(wl.metadata.labels['app.kubernetes.io/version'], version, wl.metadata.name);
  assert.equal(container(coordinator()).image, `dtrain-cpu:${version}`);
  assert.equal(container(runJob()).image, `dtrain-cpu:${version}`);
  assert.equal(container(workers()).image, `dtrain-gpu:${version}`);
  // The tags the manifests pull are the ones the Dockerfiles' build lines produce.
  const builds = ['Dockerfile.cpu', 'Dockerfile.gpu'].map((f) => readFileSync(join(ROOT, 'deploy/docker', f), 'utf8')).join('\n');
  for (const image of [`dtrain-cpu:${version}`, `dtrain-gpu:${version}`]) assert.match(builds, new RegExp(`docker build .* -t ${image.replaceAll('.', '\\.')} `), image);
});

/** Flags every command accepts through DtrainCommand (oclif's --json). */
const BASE_FLAGS = new Set(['json', 'verbose']);

test('the flags the pods pass exist on the dtrain commands', () => {
  const missing: string[] = [];
  for (const [wl, file] of [[coordinator(), 'coordinator.ts'], [workers(), 'worker.ts'], [runJob(), 'run.ts']] as const) {
    // Text, not import: the command modules pull in gRPC and tfjs.
    const source = readFileSync(join(ROOT, 'src/commands', file), 'utf8');
    for (const flag of argFlags(container(wl).args).keys()) {
      if (!BASE_FLAGS.has(flag) && !source.includes(`'${flag}':`) && !new RegExp(`^\\s+${flag}:`, 'm').test(source)) missing.push(`dtrain ${file.replace('.ts', '')} --${flag}`);
    }
  }
  assert.deepEqual(missing, [], 'flags the manifests pass but the commands do not define');
});
