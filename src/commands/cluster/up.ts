import {join} from 'node:path';

import {Flags} from '@oclif/core';

import {DtrainCommand} from '../../cli/base-command.js';
import {ExitCode, UserError} from '../../cli/errors.js';
import {backendFlag, metricsPortFlag, requireBackendFlag} from '../../cli/flags.js';
import {clusterProcesses, clusterStatus} from '../../coordinator/client.js';
import {isAlive} from '../../util/process.js';
import {type ClusterState, clusterStateDir, clusterTokenFile, readClusterState, removeClusterState, startLocalCluster, stopProcesses, writeClusterState, writeClusterToken} from '../../coordinator/local-cluster.js';
import {onShutdown} from '../../coordinator/shutdown.js';
import {METRICS_PORTS} from '../../metrics/index.js';
import {localScrapeConfig, PROMETHEUS_INSTALL, prometheusInstalled, startLocalPrometheus} from '../../metrics/prometheus.js';

export default class ClusterUp extends DtrainCommand {
  static override summary = 'Start a standing local cluster: a coordinator and N workers on this machine.';
  static override description = `With --detach the processes keep running after this command returns (state in $DTRAIN_CLUSTER_DIR or ~/.cache/dtrain/cluster/cluster.json; logs next to it); submit jobs with \`dtrain run --coordinator ADDRESS\` and stop them with \`dtrain cluster down\`. Without --detach the cluster runs until Ctrl-C.`;
  static override examples = ['<%= config.bin %> cluster up --workers 2 --detach', '<%= config.bin %> run --coordinator 127.0.0.1:50051 --workers 2 --data synthetic'];
  static override flags = {
    workers: Flags.integer({char: 'w', description: 'Worker processes to start.', default: 2}),
    port: Flags.integer({char: 'p', description: 'Coordinator port (0: any free port).', default: 50051}),
    host: Flags.string({description: 'Coordinator interface.', default: '127.0.0.1'}),
    backend: backendFlag,
    'require-backend': requireBackendFlag,
    'metrics-port': metricsPortFlag(METRICS_PORTS.coordinator, 'the coordinator\'s; worker i takes it + 1 + i'),
    detach: Flags.boolean({char: 'd', description: 'Return once the cluster is up and leave it running.', default: false}),
    'heartbeat-timeout': Flags.string({description: 'Seconds of silence after which the coordinator declares a worker dead.', default: '10'}),
    prometheus: Flags.boolean({description: 'Also start a local Prometheus (the `prometheus` binary on PATH) scraping every process of the cluster, with dtrain\'s alert rules.', default: false}),
    'prometheus-port': Flags.integer({description: 'Port of that Prometheus on 127.0.0.1.', default: 9090, min: 1, max: 65535}),
    'scrape-interval': Flags.integer({description: 'Seconds between scrapes of that Prometheus.', default: 5, min: 1, hidden: true}),
  };

  async run(): Promise<ClusterState> {
    const {flags} = await this.parse(ClusterUp);
    if (flags.workers < 1) throw new UserError(`--workers must be at least 1, got ${flags.workers}`, {exitCode: ExitCode.usage});
    const dir = clusterStateDir();
    const existing = await readClusterState(dir);
    if (existing && existing.processes.some((p) => isAlive(p.pid))) {
      throw new UserError(`a cluster is already up at ${existing.address} (state ${join(dir, 'cluster.json')})`, {exitCode: ExitCode.usage, suggestion: 'stop it with `dtrain cluster down` first'});
    }
    if (flags.prometheus && !prometheusInstalled()) {
      throw new UserError('--prometheus: the `prometheus` binary is not on PATH; nothing was started', {exitCode: ExitCode.usage, suggestion: `${PROMETHEUS_INSTALL}, or leave out --prometheus`});
    }
    const logDir = join(dir, 'logs');
    const cluster = await startLocalCluster({workers: flags.workers, backend: flags.backend, requireBackend: flags['require-backend'], host: flags.host, port: flags.port, metricsPort: flags['metrics-port'], detach: flags.detach, logDir, heartbeatTimeoutMs: Number(flags['heartbeat-timeout']) * 1000});
    const state: ClusterState = {address: cluster.address, port: cluster.port, startedAt: new Date().toISOString(), processes: cluster.processes, logDir};
    await writeClusterToken(cluster.token, dir);
    await writeClusterState(state, dir);
    // Up means every worker has registered.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const status = await clusterStatus(cluster.address, {token: cluster.token}).catch(() => undefined);
      const idle = status?.workers.filter((w) => w.state === 'idle').length ?? 0;
      if (status && idle >= flags.workers) {
        // Record where each process serves /metrics (the children know their ports; the coordinator collected them).
        const urls = new Map(clusterProcesses(status, cluster.address).map((p) => [p.pid, p.metricsUrl]));
        for (const p of state.processes) p.metricsUrl = urls.get(p.pid) ?? '';
        await writeClusterState(state, dir);
        break;
      }
      if (Date.now() > deadline || cluster.processes.some((p) => !isAlive(p.pid))) {
        await cluster.stop(2000);
        await removeClusterState(dir);
        throw new UserError(`the cluster did not come up (${idle}/${flags.workers} workers registered)`, {suggestion: `see the logs in ${logDir}`});
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    this.progress(`dtrain: cluster up at ${cluster.address}: coordinator pid ${cluster.processes[0].pid}, ${flags.workers} worker${flags.workers === 1 ? '' : 's'} (pids ${cluster.processes.slice(1).map((p) => p.pid).join(', ')}); logs in ${logDir}`);
    this.progress(`dtrain: cluster token in ${clusterTokenFile(dir)} (mode 0600; \`run --coordinator ${cluster.address}\` and \`cluster status\` read it, other clients take it with --token-file)`);
    this.progress(`dtrain: metrics at ${state.processes.map((p) => p.metricsUrl).join(', ')}`);
    if (flags.prometheus) {
      try {
        state.prometheus = await startLocalPrometheus({dir, port: flags['prometheus-port'], detach: flags.detach, config: localScrapeConfig(state.processes, {intervalSeconds: flags['scrape-interval']})});
      } catch (error) {
        await cluster.stop(2000);
        await removeClusterState(dir);
        throw new UserError(`--prometheus: ${(error as Error).message}; the cluster was stopped`, {suggestion: `is port ${flags['prometheus-port']} free? pick another with --prometheus-port`});
      }
      await writeClusterState(state, dir);
      this.progress(`dtrain: Prometheus at ${state.prometheus.url} scraping the cluster every ${flags['scrape-interval']} s (alert rules loaded; log ${state.prometheus.log})`);
    }
    if (flags.detach) {
      this.progress(`dtrain: submit with \`dtrain run --coordinator ${cluster.address} --workers ${flags.workers}\`, stop with \`dtrain cluster down\``);
      for (const c of cluster.children) {
        c.stdin?.destroy();
        c.unref();
      }
      return state;
    }
    this.progress('dtrain: Ctrl-C stops the cluster');
    await onShutdown({exitWithParent: false}, async () => {
      await cluster.stop();
      if (state.prometheus) await stopProcesses([state.prometheus.pid]);
      await removeClusterState(dir);
    });
    return state;
  }
}
