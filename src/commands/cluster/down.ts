import {DtrainCommand} from '../../cli/base-command.js';
import {clusterStateDir, isOurs, readClusterState, removeClusterState, stopProcesses} from '../../coordinator/local-cluster.js';
import {PROMETHEUS_CONFIG} from '../../metrics/prometheus.js';

export default class ClusterDown extends DtrainCommand {
  static override summary = 'Stop the local cluster started by `dtrain cluster up --detach` (every process, then its state file).';
  static override examples = ['<%= config.bin %> cluster down'];

  async run(): Promise<{stopped: number[]; wasUp: boolean}> {
    const dir = clusterStateDir();
    const state = await readClusterState(dir);
    if (!state) {
      this.progress(`dtrain: no local cluster (no ${dir}/cluster.json); nothing to stop`);
      return {stopped: [], wasUp: false};
    }
    const pids = state.processes.map((p) => p.pid).filter((pid) => isOurs(pid));
    if (state.prometheus && isOurs(state.prometheus.pid, PROMETHEUS_CONFIG)) pids.push(state.prometheus.pid);
    // The coordinator first: it ends every worker session, so the workers exit cleanly.
    await stopProcesses(pids);
    await removeClusterState(dir);
    this.progress(`dtrain: cluster at ${state.address} stopped (${pids.length} process${pids.length === 1 ? '' : 'es'})`);
    return {stopped: pids, wasUp: true};
  }
}
