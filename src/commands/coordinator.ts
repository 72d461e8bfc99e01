import {writeFile} from 'node:fs/promises';

import {Flags} from '@oclif/core';

import {DtrainCommand} from '../cli/base-command.js';
import {ExitCode, UserError} from '../cli/errors.js';
import {metricsHostFlag, metricsPortFlag} from '../cli/flags.js';
import {METRICS_PORTS} from '../metrics/index.js';
import {isLoopbackHost, resolveToken} from '../coordinator/auth.js';
import {CoordinatorServer} from '../coordinator/server.js';
import {exitSoon, onShutdown} from '../coordinator/shutdown.js';

export default class CoordinatorCommand extends DtrainCommand {
  static override summary = 'Run the cluster coordinator: gRPC server for workers and jobs (long-running).';
  static override description = `Workers register with \`dtrain worker --coordinator HOST:PORT\`; jobs come from \`dtrain run --coordinator HOST:PORT\`. A worker that sends no heartbeat for --heartbeat-timeout seconds, or whose session ends, is declared dead; its job continues with the other workers (elastic, see dtrain run --min-workers) unless it was submitted with --no-elastic. SIGINT/SIGTERM end every worker session, so the workers exit too. Every call must carry the cluster token ($DTRAIN_TOKEN or --token-file); without a token the coordinator serves loopback callers only.`;
  static override examples = ['<%= config.bin %> coordinator --port 50051', '<%= config.bin %> coordinator --host 0.0.0.0 --port 50051 --heartbeat-timeout 10'];
  static override flags = {
    host: Flags.string({description: 'Interface to listen on (0.0.0.0 for all).', default: '127.0.0.1'}),
    port: Flags.integer({char: 'p', description: 'Port to listen on (0: any free port, printed).', default: 50051}),
    'heartbeat-timeout': Flags.string({description: 'Seconds of silence after which a worker is declared dead.', default: '10'}),
    'metrics-port': metricsPortFlag(METRICS_PORTS.coordinator, 'workers of a local cluster take the next ports'),
    'metrics-host': metricsHostFlag('--host'),
    'token-file': Flags.string({description: 'File holding the cluster token every worker and client must present (default $DTRAIN_TOKEN; none: loopback callers only).'}),
    'tls-cert': Flags.string({description: 'PEM certificate (chain): serve gRPC over TLS (with --tls-key; clients pass the CA with --tls-ca).'}),
    'tls-key': Flags.string({description: 'PEM private key of --tls-cert.'}),
    'port-file': Flags.string({description: 'Write the port here once listening (used by cluster up).', hidden: true}),
    'exit-with-parent': Flags.boolean({description: 'Exit when stdin closes (the parent died).', hidden: true, default: false}),
  };

  async run(): Promise<{host: string; port: number}> {
    const {flags} = await this.parse(CoordinatorCommand);
    const timeout = Number(flags['heartbeat-timeout']);
    if (!(timeout > 0)) throw new UserError(`--heartbeat-timeout must be a positive number of seconds, got ${flags['heartbeat-timeout']}`, {exitCode: ExitCode.usage});
    const metrics = {port: flags['metrics-port'], host: flags['metrics-host'] ?? flags.host};
    const token = await resolveToken(flags['token-file']);
    const tls = {cert: flags['tls-cert'], key: flags['tls-key']};
    const server = new CoordinatorServer({host: flags.host, port: flags.port, heartbeatTimeoutMs: timeout * 1000, version: this.config.version, metrics, token, tls});
    let port: number;
    try {
      port = await server.start();
    } catch (err) {
      const message = (err as Error).message;
      // The metrics server's own message already names the flag to change.
      if (message.startsWith('cannot serve metrics')) throw new UserError(message, {exitCode: ExitCode.network});
      if (err instanceof UserError) throw err;
      throw new UserError(`cannot listen on ${flags.host}:${flags.port}: ${message}`, {exitCode: ExitCode.network, suggestion: 'pick another --port (0 takes a free one)'});
    }
    const security = `${token === undefined ? 'no token: loopback callers only' : 'token required'}, ${tls.cert ? 'TLS' : 'plain gRPC'}`;
    process.stderr.write(`dtrain coordinator: listening on ${flags.host}:${port}, metrics on ${server.metricsUrl} (dtrain ${this.config.version}, heartbeat timeout ${timeout} s, ${security})\n`);
    if (token === undefined && !isLoopbackHost(flags.host)) {
      process.stderr.write(`dtrain coordinator: WARNING: listening on ${flags.host} without a cluster token: every caller from another machine is refused; set DTRAIN_TOKEN or --token-file on the coordinator and its workers\n`);
    }
    if (flags['port-file']) await writeFile(flags['port-file'], `${port}\n`);
    await onShutdown({exitWithParent: flags['exit-with-parent']}, async () => server.stop());
    exitSoon();
    return {host: flags.host, port};
  }
}
