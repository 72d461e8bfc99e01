/**
 * The Grafana dashboard, generated from the metric catalog so a renamed metric cannot leave a
 * panel querying nothing. `node --import tsx test/deploy/generate.ts` writes
 * deploy/grafana/dashboards/dtrain.json and its Kubernetes ConfigMap; a test fails on drift.
 *
 * Datasource: a `datasource` template variable, never `${DS_PROMETHEUS}` import placeholders,
 * which only the UI import resolves and which break file provisioning (grafana/grafana#10786).
 */
import {COORDINATOR_METRICS as C, WORKER_METRICS as W} from './definitions.js';

export const DASHBOARD_UID = 'dtrain';
const DS = {type: 'prometheus', uid: '${datasource}'} as const;
/** Worker-scoped selector driven by the `worker` variable. */
const SEL = 'worker=~"$worker"';
const RATE = '[$__rate_interval]';

interface Target {
  expr: string;
  legend: string;
}
interface PanelSpec {
  title: string;
  description: string;
  unit: string;
  targets: Target[];
  /** Width out of 24; panels flow left to right, 8 rows high. */
  w?: number;
  type?: 'timeseries' | 'stat' | 'bargauge';
  min?: number;
  max?: number;
  log?: boolean;
}

const t = (expr: string, legend: string): Target => ({expr, legend});
const rate = (name: string, sel: string): string => `rate(${name}{${sel}}${RATE})`;
const quantile = (q: number, name: string): string => `histogram_quantile(${q}, sum by (le, worker) (${rate(`${name}_bucket`, SEL)}))`;
const meanPerWorker = (name: string): string => `sum by (worker) (${rate(`${name}_sum`, SEL)}) / sum by (worker) (${rate(`${name}_count`, SEL)})`;
const trainImages = (sel: string): string => rate(W.imagesProcessed.name, `phase="train"${sel}`);

const PANELS: PanelSpec[] = [
  {title: 'Job state', description: 'State of the current job (dtrain_job_state == 1).', unit: 'none', type: 'stat', w: 6, targets: [t(`${C.jobState.name} == 1`, '{{state}}')]},
  {title: 'Epoch', description: 'Epochs completed out of the epochs planned.', unit: 'none', type: 'stat', w: 6, targets: [t(C.epoch.name, 'done'), t(C.epochsPlanned.name, 'planned')]},
  {title: 'Workers', description: 'Registered workers and those with a fresh heartbeat.', unit: 'none', type: 'stat', w: 6, targets: [t(C.workersRegistered.name, 'registered'), t(C.workersAlive.name, 'alive')]},
  {title: 'Global step', description: 'Optimizer steps completed by the current job.', unit: 'none', type: 'stat', w: 6, targets: [t(C.step.name, 'step')]},
  {title: 'Loss', description: 'Mean cross-entropy per epoch: training (all ranks) and test.', unit: 'none', targets: [t(C.trainLoss.name, 'train'), t(C.testLoss.name, 'test')]},
  {title: 'Accuracy', description: 'Training and test accuracy per epoch.', unit: 'percentunit', min: 0, max: 1, targets: [t(C.trainAccuracy.name, 'train'), t(C.testAccuracy.name, 'test')]},
  {title: 'Learning rate', description: 'Learning rate set by the scheduler (log scale).', unit: 'none', log: true, targets: [t(C.learningRate.name, 'lr')]},
  {title: 'Test accuracy per class', description: 'Accuracy of the last evaluation on each CIFAR-10 class.', unit: 'percentunit', type: 'bargauge', min: 0, max: 1, targets: [t(C.testClassAccuracy.name, '{{class}}')]},
  {title: 'Images/s (all workers)', description: 'Training throughput of the cluster.', unit: 'none', targets: [t(`sum(${trainImages('')})`, 'images/s')]},
  {title: 'Images/s per worker', description: 'Training throughput of each worker: a slow one holds the ring back.', unit: 'none', targets: [t(`sum by (worker) (${trainImages(`, ${SEL}`)})`, '{{worker}}')]},
  {
    title: 'Step time',
    description: 'Wall time of one training step (all-reduce included): median and p90 per worker.',
    unit: 's',
    targets: [t(quantile(0.5, W.stepSeconds.name), 'p50 {{worker}}'), t(quantile(0.9, W.stepSeconds.name), 'p90 {{worker}}')],
  },
  {
    title: 'All-reduce latency',
    description: 'Wall time of one gradient all-reduce: mean and p99 per worker.',
    unit: 's',
    targets: [t(meanPerWorker(W.allreduceSeconds.name), 'mean {{worker}}'), t(quantile(0.99, W.allreduceSeconds.name), 'p99 {{worker}}')],
  },
  {title: 'All-reduce bandwidth', description: 'Gradient bytes per second each worker sends and receives over the ring.', unit: 'Bps', targets: [t(`sum by (worker, direction) (${rate(W.allreduceBytes.name, SEL)})`, '{{worker}} {{direction}}')]},
  {
    title: 'Waiting for peers',
    description: 'Fraction of wall time each worker spends waiting for ring peers, and the share of step time spent in all-reduce.',
    unit: 'percentunit',
    min: 0,
    targets: [
      t(`sum by (worker) (${rate(W.allreducePeerWaitSeconds.name, SEL)})`, 'waiting {{worker}}'),
      t(`sum by (worker) (${rate(`${W.allreduceSeconds.name}_sum`, SEL)}) / sum by (worker) (${rate(`${W.stepSeconds.name}_sum`, SEL)})`, 'all-reduce share {{worker}}'),
    ],
  },
  {title: 'Worker health', description: 'Scrape status of every dtrain process (1 up, 0 down).', unit: 'none', min: 0, max: 1, targets: [t('up{dtrain_role=~"coordinator|worker"}', '{{dtrain_role}} {{instance}}')]},
  {title: 'Heartbeat age', description: 'Seconds since the coordinator last heard from each worker.', unit: 's', targets: [t(`${C.heartbeatAgeSeconds.name}{${SEL}}`, '{{worker}}')]},
  {title: 'tfjs tensor memory', description: 'Bytes held by TensorFlow.js tensors per worker.', unit: 'bytes', targets: [t(`${W.tfjsMemoryBytes.name}{${SEL}}`, '{{worker}}')]},
  {title: 'tfjs tensors', description: 'Tensors alive per worker; a steady climb is a leak.', unit: 'none', targets: [t(`${W.tfjsTensors.name}{${SEL}}`, '{{worker}}')]},
];

function panel(p: PanelSpec, id: number, gridPos: {x: number; y: number; w: number; h: number}): Record<string, unknown> {
  const custom = p.log ? {scaleDistribution: {type: 'log', log: 10}} : {};
  return {
    id,
    type: p.type ?? 'timeseries',
    title: p.title,
    description: p.description,
    datasource: DS,
    gridPos,
    fieldConfig: {defaults: {unit: p.unit, min: p.min, max: p.max, custom}, overrides: []},
    options: p.type === 'stat' ? {reduceOptions: {calcs: ['lastNotNull']}, textMode: 'value_and_name'} : {legend: {displayMode: 'list', placement: 'bottom'}},
    targets: p.targets.map((x, i) => ({refId: String.fromCharCode(65 + i), expr: x.expr, legendFormat: x.legend})),
  };
}

export function buildDashboard(): Record<string, unknown> {
  let [x, y, rowH] = [0, 0, 0];
  const panels = PANELS.map((p, i) => {
    const w = p.w ?? 12;
    const h = p.type === 'stat' ? 4 : 8;
    if (x + w > 24) [x, y, rowH] = [0, y + rowH, 0];
    const pos = {x, y, w, h};
    x += w;
    rowH = Math.max(rowH, h);
    return panel(p, i + 1, pos);
  });
  return {
    uid: DASHBOARD_UID,
    title: 'dtrain — distributed training',
    description: 'ShuffleNetV2 / CIFAR-10 training across a dtrain cluster (coordinator + workers).',
    tags: ['dtrain'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '10s',
    time: {from: 'now-1h', to: 'now'},
    annotations: {list: []},
    templating: {
      list: [
        {name: 'datasource', label: 'Prometheus', type: 'datasource', query: 'prometheus', current: {}, hide: 0},
        {
          name: 'worker',
          label: 'Worker',
          type: 'query',
          datasource: DS,
          query: {query: `label_values(${W.info.name}, worker)`, refId: 'workers'},
          definition: `label_values(${W.info.name}, worker)`,
          refresh: 2,
          multi: true,
          includeAll: true,
          allValue: '.*',
          current: {text: 'All', value: '$__all'},
          hide: 0,
        },
      ],
    },
    panels,
  };
}

/**
 * JSON with small objects kept on one line: readable, diff-friendly, and without the walls of
 * identical lines `JSON.stringify(v, null, 2)` would print for every panel.
 */
export function compactJson(value: unknown, indent = ''): string {
  const flat = JSON.stringify(value);
  if (flat === undefined || flat.length + indent.length <= 110 || value === null || typeof value !== 'object') return flat ?? 'null';
  const inner = `${indent}  `;
  if (Array.isArray(value)) return `[\n${value.map((v) => inner + compactJson(v, inner)).join(',\n')}\n${indent}]`;
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${compactJson(v, inner)}`).join(',\n')}\n${indent}}`;
}

export function renderDashboardJson(): string {
  return `${compactJson(buildDashboard())}\n`;
}

/** The dashboard as a ConfigMap for Grafana's dashboard sidecar (label grafana_dashboard: "1"). */
export function renderDashboardConfigMap(): string {
  // One line of JSON in a single-quoted scalar: YAML escapes only ' (as ''), and the ConfigMap does
  // not repeat the dashboard's text block by block.
  const json = JSON.stringify(buildDashboard()).replaceAll("'", "''");
  return [
    '# Generated from src/metrics/dashboard.ts by `node --import tsx test/deploy/generate.ts`; do not edit.',
    "# Grafana's dashboard sidecar loads every ConfigMap labelled grafana_dashboard: \"1\" (watch this namespace or ALL).",
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    '  name: dtrain-grafana-dashboard',
    '  labels:',
    '    app.kubernetes.io/name: dtrain',
    '    grafana_dashboard: "1"',
    'data:',
    `  dtrain.json: '${json}'`,
    '',
  ].join('\n');
}
