import {createHash} from 'node:crypto';
import {mkdir, open, readdir, readFile, rename, rm} from 'node:fs/promises';
import {basename, dirname, join} from 'node:path';

import {ExitCode, UserError} from '../cli/errors.js';

/**
 * Per-epoch checkpoint, written by the coordinator from rank 0's state:
 * - checkpoint-epochN.safetensors — weights and BN buffers, PyTorch names and layouts (loads into the seed's model);
 * - checkpoint-epochN.optim.safetensors — SGD momentum buffers (tfjs layouts, parameter names);
 * - checkpoint-epochN.json — everything else needed to resume exactly (CheckpointState), with the
 *   byte length and sha256 of both binary files;
 * - latest.json — a copy of the newest checkpoint-epochN.json, renamed into place last, read by --resume.
 * Every file is written to a temp file in the same directory, fsynced and renamed, so a crash or a
 * full disk leaves either the old file or the new one, never a torn one.
 */
export interface CheckpointState {
  format: 'dtrain-cluster-checkpoint';
  /** 2 adds `files` (lengths and hashes); version 1 files are read without that check. */
  version: 1 | 2;
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
  files?: {weights: FileRecord; optimizer: FileRecord};
  writtenAt: string;
}

export interface FileRecord {
  bytes: number;
  sha256: string;
}

export type CheckpointContent = Omit<CheckpointState, 'weights' | 'optimizer' | 'files' | 'format' | 'version' | 'writtenAt'>;

export interface WrittenCheckpoint {
  weights: string;
  optimizer: string;
  state: string;
  /** Older checkpoint files deleted to keep `keep` epochs. */
  pruned: string[];
}

export const DEFAULT_KEEP_CHECKPOINTS = 3;

const EPOCH_FILE = /^checkpoint-epoch(\d+)\.(safetensors|optim\.safetensors|json)$/;
const TEMP_FILE = /^\.(?:checkpoint-epoch\d+\.(?:safetensors|optim\.safetensors|json)|latest\.json)\.(\d+)\.tmp$/;

function record(data: Uint8Array): FileRecord {
  return {bytes: data.byteLength, sha256: createHash('sha256').update(data).digest('hex')};
}

/** data → a temp file beside `name`, flushed to the disk; returns the temp path. */
async function writeTemp(dir: string, name: string, data: Uint8Array | string, temps: string[]): Promise<string> {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  temps.push(tmp);
  const file = await open(tmp, 'w');
  try {
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
  return tmp;
}

/** Makes the renames in dir durable (a crash right after cannot undo them). */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const WRITE_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EIO: 'I/O error',
};

/**
 * Writes epoch `state.epoch`'s checkpoint atomically (every file temp → fsync → rename, latest.json
 * last, then the directory fsynced), then deletes epochs beyond the `keep` newest. On any write
 * error the temp files are removed, the previous checkpoints are untouched, and the error says which
 * checkpoint is the last good one (`lastGood`).
 */
export async function writeCheckpoint(
  dir: string,
  state: CheckpointContent,
  weights: Uint8Array,
  optimizer: Uint8Array,
  options: {keep: number; lastGood?: string},
): Promise<WrittenCheckpoint> {
  const base = `checkpoint-epoch${state.epoch}`;
  const names = {weights: `${base}.safetensors`, optimizer: `${base}.optim.safetensors`, state: `${base}.json`};
  const temps: string[] = [];
  try {
    await mkdir(dir, {recursive: true});
    const full: CheckpointState = {
      format: 'dtrain-cluster-checkpoint',
      version: 2,
      ...state,
      weights: names.weights,
      optimizer: names.optimizer,
      files: {weights: record(weights), optimizer: record(optimizer)},
      writtenAt: new Date().toISOString(),
    };
    const json = JSON.stringify(full, null, 2) + '\n';
    const tmpWeights = await writeTemp(dir, names.weights, weights, temps);
    const tmpOptimizer = await writeTemp(dir, names.optimizer, optimizer, temps);
    const tmpState = await writeTemp(dir, names.state, json, temps);
    const tmpLatest = await writeTemp(dir, 'latest.json', json, temps);
    // Every byte is on the disk: only renames remain, latest.json last, so it never names a missing file.
    await rename(tmpWeights, join(dir, names.weights));
    await rename(tmpOptimizer, join(dir, names.optimizer));
    await rename(tmpState, join(dir, names.state));
    await rename(tmpLatest, join(dir, 'latest.json'));
    await syncDir(dir);
  } catch (err) {
    await Promise.all(temps.map((t) => rm(t, {force: true})));
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const why = WRITE_ERRORS[code] ?? (err as Error).message;
    const kept = options.lastGood ? `the last good checkpoint is ${options.lastGood}` : 'no checkpoint of this job was written yet';
    const fix = code === 'ENOSPC' || code === 'EDQUOT' ? 'free space' : 'fix the checkpoint directory';
    throw new UserError(`cannot write checkpoint for epoch ${state.epoch} to ${dir}: ${why}; ${kept}; ${fix} and rerun with --resume`, {exitCode: ExitCode.data, cause: err});
  }
  const pruned = await pruneCheckpoints(dir, options.keep, state.epoch);
  return {weights: join(dir, names.weights), optimizer: join(dir, names.optimizer), state: join(dir, names.state), pruned};
}

/** Deletes the files of every epoch but the `keep` newest and `current` (what latest.json names), and temp files of dead writers. */
async function pruneCheckpoints(dir: string, keep: number, current: number): Promise<string[]> {
  const names = await readdir(dir);
  const epochs = [...new Set(names.map((n) => EPOCH_FILE.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])))].sort((a, b) => b - a);
  const kept = new Set([current, ...epochs.slice(0, keep)]);
  const doomed = names.filter((n) => {
    const epoch = EPOCH_FILE.exec(n)?.[1];
    if (epoch !== undefined) return !kept.has(Number(epoch));
    const writer = TEMP_FILE.exec(n)?.[1];
    return writer !== undefined && Number(writer) !== process.pid;
  });
  await Promise.all(doomed.map((n) => rm(join(dir, n), {force: true})));
  return doomed.map((n) => join(dir, n));
}

export interface LoadedCheckpoint {
  state: CheckpointState;
  weights: Buffer;
  optimizer: Buffer;
  /** The weights file. */
  path: string;
}

/** Why a binary file does not match what its checkpoint JSON records, or undefined when it does. */
function mismatch(name: string, data: Buffer, want: FileRecord | undefined): string | undefined {
  if (!want) return undefined;
  if (data.byteLength !== want.bytes) return `${name} is ${data.byteLength} bytes, the checkpoint records ${want.bytes} (truncated or overwritten)`;
  const got = record(data).sha256;
  if (got !== want.sha256) return `${name} has sha256 ${got.slice(0, 12)}…, the checkpoint records ${want.sha256.slice(0, 12)}… (corrupted)`;
  return undefined;
}

/** One checkpoint JSON and the files it names, verified; throws a one-line reason when anything is wrong. */
async function loadVerified(dir: string, jsonName: string): Promise<LoadedCheckpoint> {
  let state: CheckpointState;
  try {
    state = JSON.parse(await readFile(join(dir, jsonName), 'utf8')) as CheckpointState;
  } catch (err) {
    throw new Error(err instanceof SyntaxError ? `unparsable JSON (${err.message})` : (err as Error).message);
  }
  if (state?.format !== 'dtrain-cluster-checkpoint') throw new Error('not a dtrain cluster checkpoint');
  for (const name of [state.weights, state.optimizer]) if (typeof name !== 'string' || basename(name) !== name) throw new Error(`names no file of this directory (${JSON.stringify(name)})`);
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name));
    } catch (err) {
      throw new Error(`cannot read ${name}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message}`);
    }
  };
  const weights = await read(state.weights);
  const optimizer = await read(state.optimizer);
  const problem = mismatch(state.weights, weights, state.files?.weights) ?? mismatch(state.optimizer, optimizer, state.files?.optimizer);
  if (problem) throw new Error(problem);
  return {state, weights, optimizer, path: join(dir, state.weights)};
}

/**
 * The newest valid checkpoint in dir: latest.json, else checkpoint-epochN.json newest first, each
 * verified against its recorded lengths and hashes; every refused one is logged with its reason.
 * undefined when dir holds no checkpoint; a one-line error when it holds only damaged ones.
 */
export async function readLatestCheckpoint(dir: string, log: (line: string) => void): Promise<LoadedCheckpoint | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const epochJsons = names
    .map((n) => ({n, m: EPOCH_FILE.exec(n)}))
    .filter(({m}) => m?.[2] === 'json')
    .sort((a, b) => Number(b.m![1]) - Number(a.m![1]))
    .map(({n}) => n);
  const candidates = [...(names.includes('latest.json') ? ['latest.json'] : []), ...epochJsons];
  if (candidates.length === 0) return undefined;
  const refused: string[] = [];
  for (const name of candidates) {
    try {
      const loaded = await loadVerified(dir, name);
      if (refused.length > 0) log(`using ${join(dir, name)} (epoch ${loaded.state.epoch}) instead`);
      return loaded;
    } catch (err) {
      refused.push(`${name}: ${(err as Error).message}`);
      log(`checkpoint ${join(dir, name)} refused: ${(err as Error).message}`);
    }
  }
  throw new UserError(`no valid checkpoint in ${dir}: ${refused.join('; ')}`, {exitCode: ExitCode.data, suggestion: 'pass another --checkpoint-dir, or start over without --resume'});
}

/**
 * For commands that open one weights file (eval, predict): when it is a cluster checkpoint whose
 * checkpoint-epochN.json records its length and hash, refuses a file that does not match.
 */
export async function verifyRecordedWeights(path: string): Promise<void> {
  const name = basename(path);
  const m = EPOCH_FILE.exec(name);
  if (m?.[2] !== 'safetensors') return;
  let state: CheckpointState;
  try {
    state = JSON.parse(await readFile(join(dirname(path), `checkpoint-epoch${m[1]}.json`), 'utf8')) as CheckpointState;
  } catch {
    return; // no record beside it (a copied file): nothing to check against
  }
  if (state?.format !== 'dtrain-cluster-checkpoint' || state.weights !== name) return;
  const problem = mismatch(name, await readFile(path), state.files?.weights);
  if (problem) throw new UserError(`${path} is damaged: ${problem}`, {exitCode: ExitCode.data, suggestion: 'use an earlier checkpoint-epochN.safetensors of the same directory'});
}
