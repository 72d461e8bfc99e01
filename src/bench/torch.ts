/**
 * The PyTorch side of the benchmarks: bench/torch/bench.py run by a Python that imports torch.
 * PyTorch is never a dependency: when no interpreter imports it, the benchmarks say so and
 * report dtrain alone.
 */
import {execFile} from 'node:child_process';
import {existsSync} from 'node:fs';
import {fileURLToPath} from 'node:url';

import {ExitCode, UserError} from '../cli/errors.js';

/** bench/torch/bench.py of the checkout (two levels above src/bench and dist/bench). */
export const TORCH_HELPER = fileURLToPath(new URL('../../bench/torch/bench.py', import.meta.url));

export type TorchProbe = {available: true; python: string; version: string} | {available: false; reason: string};

/**
 * Interpreters tried in order: $DTRAIN_PYTHON alone when set, else python3 on PATH then
 * /usr/bin/python3 (a venv's python3 often lacks the system's torch, and the other way round).
 */
export function pythonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.DTRAIN_PYTHON) return [env.DTRAIN_PYTHON];
  return ['python3', '/usr/bin/python3'];
}

/** The first candidate that imports torch, or why there is none. */
export async function probeTorch(candidates = pythonCandidates()): Promise<TorchProbe> {
  if (!existsSync(TORCH_HELPER)) return {available: false, reason: `${TORCH_HELPER} is missing (the PyTorch comparison runs from a checkout of dtrain)`};
  const failures: string[] = [];
  for (const python of candidates) {
    try {
      const {stdout} = await run(python, ['-c', 'import torch; print(torch.__version__)'], 60_000);
      return {available: true, python, version: stdout.trim()};
    } catch (err) {
      failures.push(`${python}: ${lastLine((err as Error).message)}`);
    }
  }
  return {available: false, reason: `no Python imports torch (${failures.join('; ')})`};
}

/** The helper's answer: the last non-empty line of its stdout, one JSON object. */
export function parseHelperOutput<T>(stdout: string): T {
  const line = stdout.trimEnd().split('\n').at(-1) ?? '';
  try {
    const value: unknown = JSON.parse(line);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as T;
  } catch {
    // reported below
  }
  throw new UserError(`the PyTorch helper printed no JSON result (last line: ${JSON.stringify(line.slice(0, 200))})`);
}

export interface TorchStateDict {
  entries: Array<{name: string; shape: number[]}>;
  params: number;
}

export interface TorchStepTimes {
  torch: string;
  threads: number;
  times: number[];
}

export interface TorchAllReduceTimes {
  torch: string;
  /** Per payload: times[rank][iteration] in ms. */
  sizes: Array<{bytes: number; times: number[][]}>;
}

export function torchStateDict(python: string, size: number): Promise<TorchStateDict> {
  return helper(python, ['state', '--size', String(size)], 120_000);
}

/** ms per training step of bench/torch/shufflenetv2.py on one thread, after `warmup` untimed steps. */
export function torchStepTimes(python: string, size: number, batch: number, steps: number, warmup: number): Promise<TorchStepTimes> {
  return helper(python, ['step', '--size', String(size), '--batch', String(batch), '--steps', String(steps), '--warmup', String(warmup)], 30 * 60_000);
}

/** gloo all_reduce (SUM, then divide) among `workers` local processes. */
export function torchAllReduceTimes(python: string, workers: number, sizes: number[], iters: number, warmup: number): Promise<TorchAllReduceTimes> {
  return helper(python, ['allreduce', '--workers', String(workers), '--bytes', sizes.join(','), '--iters', String(iters), '--warmup', String(warmup)], 30 * 60_000);
}

async function helper<T>(python: string, args: string[], timeoutMs: number): Promise<T> {
  try {
    const {stdout} = await run(python, [TORCH_HELPER, ...args], timeoutMs);
    return parseHelperOutput<T>(stdout);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`the PyTorch helper failed (${python} bench/torch/bench.py ${args[0]}): ${lastLine((err as Error).message)}`, {
      exitCode: ExitCode.failure,
      suggestion: 'run again with --no-torch to measure dtrain alone',
    });
  }
}

function run(file: string, args: string[], timeout: number): Promise<{stdout: string}> {
  return new Promise((resolve, reject) =>
    execFile(file, args, {timeout, maxBuffer: 64 * 1024 * 1024, env: {...process.env, PYTHONDONTWRITEBYTECODE: '1'}}, (err, stdout, stderr) =>
      err ? reject(new Error(stderr.trim() || err.message)) : resolve({stdout}),
    ),
  );
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? text;
}
