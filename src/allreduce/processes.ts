/**
 * One process per rank, joined into a ring over IPC: the harness behind `dtrain bench allreduce`
 * and the multi-process tests. A rank process speaks WorkerMessage: it reports its endpoint
 * (ready), gets every rank's (peers), reports its results (done) and, on exit, closes and leaves.
 */
import {type ChildProcess, fork} from 'node:child_process';

import {ExitCode, UserError} from '../cli/errors.js';
import type {RingAllReduce} from './ring.js';

/** The IPC protocol between runRingProcesses and a rank process; R is what a rank reports when done. */
export type WorkerMessage<R = unknown> =
  | {type: 'ready'; endpoint: string}
  | {type: 'peers'; peers: string[]}
  | {type: 'done'; results: R}
  | {type: 'error'; message: string}
  | {type: 'exit'};

export interface RingProcessesOptions {
  script: string;
  execArgv: string[];
  workers: number;
  args: (rank: number) => string[];
}

export interface RingProcessesResult<R> {
  /** What each rank sent with 'done', by rank. */
  results: R[];
  /** How each process ended after 'exit': code 0 and no signal unless it had to be killed. */
  exits: Array<{code: number | null; signal: NodeJS.Signals | null}>;
}

/**
 * Runs one process per rank that speaks WorkerMessage over IPC: gathers the endpoints, hands every
 * rank the full list, collects the results, then lets them close and leave (killed after 5 s).
 */
export async function runRingProcesses<R>(options: RingProcessesOptions): Promise<RingProcessesResult<R>> {
  const children: ChildProcess[] = [];
  const exited: Array<Promise<{code: number | null; signal: NodeJS.Signals | null}>> = [];
  const outcome = await new Promise<R[]>((resolve, reject) => {
    const endpoints: string[] = [];
    const done: R[] = [];
    let ready = 0;
    let finished = 0;
    for (let rank = 0; rank < options.workers; rank++) {
      const child = fork(options.script, options.args(rank), {execArgv: options.execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc']});
      children.push(child);
      exited.push(new Promise((res) => child.once('exit', (code, signal) => res({code, signal}))));
      child.on('message', (m: WorkerMessage<R>) => {
        if (m.type === 'ready') {
          endpoints[rank] = m.endpoint;
          if (++ready === options.workers) for (const c of children) c.send({type: 'peers', peers: endpoints} satisfies WorkerMessage<R>);
        } else if (m.type === 'done') {
          done[rank] = m.results;
          if (++finished === options.workers) resolve(done);
        } else if (m.type === 'error') {
          reject(new UserError(`all-reduce worker ${rank}: ${m.message}`, {exitCode: ExitCode.network}));
        }
      });
      child.once('exit', (code, signal) => {
        if (done[rank] === undefined) reject(new UserError(`all-reduce worker ${rank} exited early (${signal ?? `code ${code}`})`));
      });
      child.on('error', reject);
    }
  }).then(
    (results) => ({results}),
    (error: unknown) => ({error}),
  );
  // Success or not, every process is asked to leave (or killed) before this returns.
  for (const c of children) stop(c);
  const exits = await Promise.all(exited);
  if ('error' in outcome) throw outcome.error;
  return {results: outcome.results, exits};
}

/** Asks a worker to close its ring and leave; kills it if it does not within a few seconds. */
function stop(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  child.once('exit', () => clearTimeout(timer));
  if (child.connected) child.send({type: 'exit'} satisfies WorkerMessage);
  else child.kill();
}

/**
 * The rank side of WorkerMessage, in a process forked by runRingProcesses: starts the ring and
 * reports its endpoint, joins the peers and runs `work` when they arrive, reports the results.
 * It closes only on 'exit' (after every rank is done), which keeps its inbox open for a slower
 * predecessor.
 */
export function serveRingRank<R>(ring: RingAllReduce, work: () => Promise<R>): void {
  const report = (m: WorkerMessage<R>): void => void process.send?.(m);
  const fail = (err: Error) => report({type: 'error', message: err.message});
  process.on('message', (m: WorkerMessage<R>) => {
    if (m.type === 'peers') {
      ring.connect(m.peers);
      work().then((results) => report({type: 'done', results}), fail);
    } else if (m.type === 'exit') {
      ring.close();
      process.disconnect();
    }
  });
  ring.start().then((endpoint) => report({type: 'ready', endpoint}), fail);
}
