/**
 * A local Prometheus for a local cluster (`dtrain cluster up --prometheus`): the scrape config for
 * the cluster's processes, with dtrain's alert rules, and the server itself (Debian's `prometheus`
 * or any release binary on PATH).
 */
import {spawn, spawnSync} from 'node:child_process';
import {open, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';

/** deploy/prometheus/rules, from src/metrics or dist/metrics alike. */
export const ALERT_RULES_GLOB = join(fileURLToPath(new URL('../../deploy/prometheus/rules', import.meta.url)), '*.yml');

export const PROMETHEUS_INSTALL = 'install it with `apt-get install prometheus` (Debian/Ubuntu) or put a release binary from https://prometheus.io/download/ on PATH';

/** The config file name marks the server as this cluster's (cluster down only stops what it started). */
export const PROMETHEUS_CONFIG = 'dtrain-prometheus.yml';

export interface ScrapeTarget {
  role: string;
  metricsUrl?: string;
}

/** Static scrape config: one job per role, every target labelled dtrain_role like the shipped configs. */
export function localScrapeConfig(targets: ScrapeTarget[], options: {intervalSeconds: number; rulesGlob?: string}): string {
  const roles = [...new Set(targets.filter((t) => t.metricsUrl).map((t) => t.role))];
  const jobs = roles.map((role) => {
    const hosts = targets.filter((t) => t.role === role && t.metricsUrl).map((t) => JSON.stringify(new URL(t.metricsUrl!).host));
    return `  - job_name: dtrain-${role}\n    static_configs: [{targets: [${hosts.join(', ')}], labels: {dtrain_role: ${role}}}]`;
  });
  return [
    `global: {scrape_interval: ${options.intervalSeconds}s, evaluation_interval: ${options.intervalSeconds}s}`,
    `rule_files: [${JSON.stringify(options.rulesGlob ?? ALERT_RULES_GLOB)}]`,
    'scrape_configs:',
    ...jobs,
    '',
  ].join('\n');
}

export function prometheusInstalled(): boolean {
  return spawnSync('prometheus', ['--version'], {encoding: 'utf8'}).status === 0;
}

/** Starts `prometheus` on 127.0.0.1:port with its config and data under dir; resolves once it is ready. */
export async function startLocalPrometheus(options: {dir: string; config: string; port: number; detach: boolean}): Promise<{pid: number; url: string; log: string}> {
  const configFile = join(options.dir, PROMETHEUS_CONFIG);
  await writeFile(configFile, options.config);
  const log = join(options.dir, 'prometheus.log');
  const fd = await open(log, 'a');
  const child = spawn('prometheus', [`--config.file=${configFile}`, `--storage.tsdb.path=${join(options.dir, 'prometheus-data')}`, `--web.listen-address=127.0.0.1:${options.port}`, '--log.level=warn'], {
    detached: options.detach,
    stdio: ['ignore', fd.fd, fd.fd],
  });
  await fd.close();
  if (options.detach) child.unref();
  const url = `http://127.0.0.1:${options.port}`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`prometheus exited (code ${child.exitCode}); see ${log}`);
    if (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)) return {pid: child.pid!, url, log};
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.kill('SIGKILL');
  throw new Error(`prometheus was not ready on ${url} within 30 s; see ${log}`);
}
