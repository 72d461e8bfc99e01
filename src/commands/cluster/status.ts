import {DtrainCommand} from '../../cli/base-command.js';
import {ExitCode, UserError} from '../../cli/errors.js';
import {formatTable} from '../../cli/table.js';
import {Flags} from '@oclif/core';
import {coordinatorSecurityFlags} from '../../cli/flags.js';
import {resolveClientSecurity} from '../../coordinator/auth.js';
import {type ClusterProcess, clusterProcesses, clusterStatus} from '../../coordinator/client.js';
import {clusterStateDir, localClusterToken, readClusterState} from '../../coordinator/local-cluster.js';
import type {ClusterStatusResponse} from '../../gen/dtrain.js';

export default class ClusterStatus extends DtrainCommand {
  static override summary = 'Show the coordinator, its workers (backend, device, state, heartbeat) and jobs.';
  static override examples = ['<%= config.bin %> cluster status', '<%= config.bin %> cluster status --coordinator 10.0.0.2:50051 --json'];
  static override flags = {
    coordinator: Flags.string({char: 'c', description: 'Coordinator HOST:PORT (default: the local cluster started by `dtrain cluster up`).'}),
    ...coordinatorSecurityFlags,
  };

  async run(): Promise<ClusterStatusResponse & {address: string; processes: ClusterProcess[]}> {
    const {flags} = await this.parse(ClusterStatus);
    const state = flags.coordinator ? undefined : await readClusterState();
    const address = flags.coordinator ?? state?.address;
    if (!address) throw new UserError(`no local cluster (no ${clusterStateDir()}/cluster.json)`, {exitCode: ExitCode.usage, suggestion: 'start one with `dtrain cluster up --detach`, or pass --coordinator HOST:PORT'});
    const security = await resolveClientSecurity({tokenFile: flags['token-file'], tlsCa: flags['tls-ca']}, () => localClusterToken(address));
    const status = await clusterStatus(address, security);
    this.log(`coordinator ${address} (dtrain ${status.coordinatorVersion}, up ${(status.uptimeMs / 1000).toFixed(0)} s, pid ${status.coordinatorPid}, metrics ${status.coordinatorMetricsUrl || '-'})`);
    this.log(
      formatTable(
        ['Worker', 'State', 'Rank', 'Job', 'Backend', 'Device', 'Host', 'PID', 'Heartbeat', 'Metrics'],
        status.workers.map((w) => [w.workerId, w.state, w.state === 'busy' ? String(w.rank) : '-', w.jobId || '-', w.backend, w.device, w.host, String(w.pid), `${(w.lastHeartbeatMsAgo / 1000).toFixed(1)} s ago`, w.metricsUrl || '-']),
      ),
    );
    if (status.jobs.length > 0) {
      this.log('');
      this.log(formatTable(['Job', 'State', 'Epoch', 'Workers', 'Error'], status.jobs.map((j) => [j.jobId, j.state, `${j.epoch}/${j.epochs}`, String(j.workers), j.error || '-'])));
    }
    return {...status, address, processes: clusterProcesses(status, address)};
  }
}
