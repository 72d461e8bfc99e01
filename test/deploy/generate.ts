/**
 * Regenerates the files derived from src/metrics/dashboard.ts:
 *   node --import tsx test/deploy/generate.ts
 * test/deploy/grafana.test.ts fails when they drift from the generator.
 */
import {writeFile} from 'node:fs/promises';
import {fileURLToPath} from 'node:url';

import {renderDashboardConfigMap, renderDashboardJson} from '../../src/metrics/dashboard.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const GENERATED = {
  'deploy/grafana/dashboards/dtrain.json': renderDashboardJson,
  'deploy/k8s/grafana-dashboard.yaml': renderDashboardConfigMap,
} as const;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [path, render] of Object.entries(GENERATED)) {
    await writeFile(ROOT + path, render());
    process.stdout.write(`wrote ${path}\n`);
  }
}
