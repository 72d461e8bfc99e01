import {Flags} from '@oclif/core';

import {DtrainCommand} from '../cli/base-command.js';
import {backendFlag, coordinatorSecurityFlags, metricsHostFlag, metricsPortFlag, precisionFlag, requireBackendFlag} from '../cli/flags.js';
import {resolveClientSecurity} from '../coordinator/auth.js';
import {localClusterToken} from '../coordinator/local-cluster.js';
import {exitSoon, onShutdown} from '../coordinator/shutdown.js';
import type {BackendChoice} from '../engine/backend.js';
import type {Precision} from '../engine/precision.js';
import {WorkerSession} from '../worker/session.js';

export default class WorkerCommand extends DtrainCommand {
  static override summary = 'Run a training worker that serves a coordinator (long-running).';
  static override description = `Registers with the coordinator (its backend and device included), keeps a session stream (heartbeats up, commands down) and trains its shard of each job, averaging gradients with the other workers over the ZeroMQ ring. Exits when the coordinator ends the session (it stopped, or declared this worker dead), when no heartbeat is answered for 30 s (exit code 4), or on SIGINT/SIGTERM.`;
  static override examples = ['<%= config.bin %> worker --coordinator 127.0.0.1:50051', '<%= config.bin %> worker --coordinator coordinator.dtrain:50051 --ring-host 10.0.0.7 --backend wasm'];
  static override flags = {
    coordinator: Flags.string({char: 'c', description: 'Coordinator address HOST:PORT.', required: true}),
    ...coordinatorSecurityFlags,
    backend: backendFlag,
    'require-backend': requireBackendFlag,
    precision: precisionFlag,
    'ring-host': Flags.string({description: 'Interface the all-reduce socket binds on; peers connect to it (must be reachable from the other workers).', default: '127.0.0.1'}),
    'ring-advertise': Flags.string({description: 'Host or IP the other workers use to reach this worker\'s all-reduce socket (default --ring-host; set it when --ring-host is 0.0.0.0, e.g. to the pod IP).'}),
    'metrics-port': metricsPortFlag(0, '`cluster up` gives worker i 9401 + i'),
    'metrics-host': metricsHostFlag('--ring-host'),
    id: Flags.string({description: 'Worker id to ask for (default: assigned by the coordinator).'}),
    'exit-with-parent': Flags.boolean({description: 'Exit when stdin closes (the parent died).', hidden: true, default: false}),
  };

  async run(): Promise<{workerId: string}> {
    const {flags} = await this.parse(WorkerCommand);
    const session = new WorkerSession({
      coordinator: flags.coordinator,
      security: await resolveClientSecurity({tokenFile: flags['token-file'], tlsCa: flags['tls-ca']}, () => localClusterToken(flags.coordinator)),
      backend: flags.backend as BackendChoice,
      requireBackend: flags['require-backend'],
      precision: flags.precision as Precision,
      ringHost: flags['ring-host'],
      ringAdvertise: flags['ring-advertise'],
      version: this.config.version,
      workerId: flags.id,
      metrics: {port: flags['metrics-port'], host: flags['metrics-host'] ?? flags['ring-host'], advertise: flags['ring-advertise'] ?? flags['ring-host']},
    });
    const running = session.run();
    await onShutdown({exitWithParent: flags['exit-with-parent']}, async () => {
      session.stop();
      await running.catch(() => {});
    }, running).finally(() => exitSoon());
    return {workerId: flags.id ?? ''};
  }
}
