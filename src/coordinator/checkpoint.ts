import {mkdir, readdir, readFile, rename, writeFile} from 'node:fs/promises';
import {join} from 'node:path';

import {ExitCode, UserError} from '../cli/errors.js';

/**
 * Per-epoch checkpoint, written by the coordinator from rank 0's state:
 * - checkpoint-epochN.safetensors — weights and BN buffers, PyTorch names and layouts (loads into the seed's model);
 * - checkpoint-epochN.optim.safetensors — SGD momentum buffers (tfjs layouts, parameter names);
 * - checkpoint-epochN.json — everything else needed to resume exactly (CheckpointState);
 * - latest.json — a copy of the newest checkpoint-epochN.json, written last (atomically), read by --resume.
 */
export interface CheckpointState {
  format: 'dtrain-cluster-checkpoint';
  version: 1;
  /** Epochs completed; training resumes at this (0-based) epoch. */
  epoch: number;
  epochs: number;
  size: string;
  seed: number;
  hyper: {globalBatch: number; lr: number; momentum: number; weightDecay: number};
  scheduler: {name: string; state: Record<string, number>; nextLr: number; trainLosses: number[]};
  /** How the data order is derived: DistributedSampler permutation seeded per (seed, epoch), per-rank augmentation seeds. */
  dataOrder: {sampler: 'distributed'; seed: number; workers: number; nextEpoch: number; datasetHash: string};
  weights: string;
  optimizer: string;
  writtenAt: string;
}

export interface WrittenCheckpoint {
  weights: string;
  optimizer: string;
  state: string;
}

export async function writeCheckpoint(dir: string, state: Omit<CheckpointState, 'weights' | 'optimizer' | 'format' | 'version' | 'writtenAt'>, weights: Uint8Array, optimizer: Uint8Array): Promise<WrittenCheckpoint> {
  await mkdir(dir, {recursive: true});
  const base = `checkpoint-epoch${state.epoch}`;
  const files = {weights: join(dir, `${base}.safetensors`), optimizer: join(dir, `${base}.optim.safetensors`), state: join(dir, `${base}.json`)};
  await writeFile(files.weights, weights);
  await writeFile(files.optimizer, optimizer);
  const full: CheckpointState = {format: 'dtrain-cluster-checkpoint', version: 1, ...state, weights: `${base}.safetensors`, optimizer: `${base}.optim.safetensors`, writtenAt: new Date().toISOString()};
  const json = JSON.stringify(full, null, 2) + '\n';
  await writeFile(files.state, json);
  const tmp = join(dir, `.latest.json.${process.pid}`);
  await writeFile(tmp, json);
  await rename(tmp, join(dir, 'latest.json'));
  return files;
}

export interface LoadedCheckpoint {
  state: CheckpointState;
  weights: Buffer;
  optimizer: Buffer;
  path: string;
}

/** The newest checkpoint in dir, or undefined when there is none. */
export async function readLatestCheckpoint(dir: string): Promise<LoadedCheckpoint | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  if (!names.includes('latest.json')) return undefined;
  const path = join(dir, 'latest.json');
  let state: CheckpointState;
  try {
    state = JSON.parse(await readFile(path, 'utf8')) as CheckpointState;
  } catch (err) {
    throw new UserError(`cannot read checkpoint ${path}: ${(err as Error).message}`, {exitCode: ExitCode.data, suggestion: 'remove the damaged latest.json or pass another --checkpoint-dir'});
  }
  if (state.format !== 'dtrain-cluster-checkpoint') throw new UserError(`${path} is not a dtrain cluster checkpoint`, {exitCode: ExitCode.data});
  return {state, weights: await readFile(join(dir, state.weights)), optimizer: await readFile(join(dir, state.optimizer)), path: join(dir, state.weights)};
}
