import {type ServiceError, status as GrpcStatus} from '@grpc/grpc-js';

import {ExitCode, UserError} from '../cli/errors.js';
import {type ClusterStatusResponse, CoordinatorClient, type JobProgress, type JobSpec} from '../gen/dtrain.js';
import {channelCredentials, type ClientSecurity, NO_TOKEN_REFUSAL, tokenInterceptor} from './auth.js';
import {GRPC_OPTIONS} from './server.js';

/** HOST:PORT → a gRPC client of the coordinator: TLS when security has a CA, the token (if any) on every call. */
export function coordinatorClient(address: string, security: ClientSecurity): CoordinatorClient {
  if (!/^[^:\s]+:\d+$/.test(address) && !/^\[[0-9a-f:]+\]:\d+$/i.test(address)) {
    throw new UserError(`coordinator address "${address}" is not HOST:PORT`, {exitCode: ExitCode.usage, suggestion: 'e.g. --coordinator 127.0.0.1:50051'});
  }
  return new CoordinatorClient(address, channelCredentials(security), {...GRPC_OPTIONS, interceptors: security.token === undefined ? [] : [tokenInterceptor(security.token)]});
}

/** A gRPC failure in words, as a UserError with the network exit code where the network is at fault. */
export function explainGrpcError(err: ServiceError, address: string): UserError {
  if (err.code === GrpcStatus.UNAVAILABLE || err.code === GrpcStatus.DEADLINE_EXCEEDED) {
    return new UserError(`cannot reach the coordinator at ${address}: ${unreachableReason(err.details || err.message)}`, {exitCode: ExitCode.network, suggestion: 'start one with `dtrain coordinator` or `dtrain cluster up`, or check --coordinator', cause: err});
  }
  if (err.code === GrpcStatus.UNAUTHENTICATED) {
    const suggestion = err.details === NO_TOKEN_REFUSAL ? 'start the coordinator with a token (DTRAIN_TOKEN or --token-file) and pass the same one here' : "set DTRAIN_TOKEN or --token-file to the cluster's token";
    return new UserError(`the coordinator at ${address} refused this token (UNAUTHENTICATED: ${err.details})`, {exitCode: ExitCode.auth, suggestion, cause: err});
  }
  return new UserError(err.details || err.message, {exitCode: err.code === GrpcStatus.INVALID_ARGUMENT ? ExitCode.usage : ExitCode.failure, cause: err});
}

export async function clusterStatus(address: string, security: ClientSecurity, timeoutMs = 5000): Promise<ClusterStatusResponse> {
  const client = coordinatorClient(address, security);
  try {
    return await new Promise<ClusterStatusResponse>((resolve, reject) => {
      client.clusterStatus({}, {deadline: new Date(Date.now() + timeoutMs)} as never, (err: ServiceError | null, res: ClusterStatusResponse) => (err ? reject(explainGrpcError(err, address)) : resolve(res)));
    });
  } finally {
    client.close();
  }
}

/** Submits a job and calls onProgress for each progress message; resolves when the job completes. */
export async function submitJob(address: string, security: ClientSecurity, spec: JobSpec, onProgress: (p: JobProgress) => void, signal?: AbortSignal): Promise<void> {
  const client = coordinatorClient(address, security);
  try {
    await new Promise<void>((resolve, reject) => {
      const call = client.submitJob(spec);
      let failed = false;
      const abort = () => call.cancel();
      signal?.addEventListener('abort', abort, {once: true});
      call.on('data', (p: JobProgress) => {
        try {
          onProgress(p);
        } catch (err) {
          failed = true;
          call.cancel();
          reject(err);
        }
      });
      call.on('error', (err: ServiceError) => {
        signal?.removeEventListener('abort', abort);
        if (failed) return;
        failed = true;
        if (err.code === GrpcStatus.CANCELLED && signal?.aborted) reject(new UserError('job cancelled', {exitCode: 130}));
        else if (err.code === GrpcStatus.ABORTED) reject(new UserError(`job failed: ${err.details}`, {exitCode: ExitCode.failure}));
        else reject(explainGrpcError(err, address));
      });
      call.on('end', () => {
        signal?.removeEventListener('abort', abort);
        if (!failed) resolve();
      });
    });
  } finally {
    client.close();
  }
}

/** One process of a cluster as `cluster status --json` lists it: where to scrape it, and whether it is up. */
export interface ClusterProcess {
  role: 'coordinator' | 'worker';
  /** Worker id; the coordinator's HOST:PORT for the coordinator. */
  id: string;
  pid: number;
  host: string;
  metricsUrl: string;
  alive: boolean;
}

/** The coordinator and every worker it knows, from its own status answer (so remote workers are listed too). */
export function clusterProcesses(status: ClusterStatusResponse, address: string): ClusterProcess[] {
  return [
    {role: 'coordinator', id: address, pid: status.coordinatorPid, host: address.replace(/:\d+$/, ''), metricsUrl: status.coordinatorMetricsUrl, alive: true},
    ...status.workers.map((w): ClusterProcess => ({role: 'worker', id: w.workerId, pid: w.pid, host: w.host, metricsUrl: w.metricsUrl, alive: w.state !== 'dead'})),
  ];
}

/** grpc-js's UNAVAILABLE details wrap the socket error in prose; the socket error (ECONNREFUSED …) is what a user can act on. */
function unreachableReason(details: string): string {
  return /connect (E[A-Z]+ \S+?)\.?(?:\s|$)/.exec(details)?.[1] ?? details.replace(/\s*Resolution note:\s*$/, '');
}
