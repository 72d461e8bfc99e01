/**
 * Reading RUN_DIR/history.jsonl, the per-epoch log `dtrain run` appends to (one JSON object a line,
 * see worker/local-run.ts). Anything unusable is a UserError that says which file and line.
 */
import {readFile, stat} from 'node:fs/promises';
import {join} from 'node:path';

import {ExitCode, UserError} from '../cli/errors.js';
import type {EpochRecord} from '../worker/local-run.js';

export const HISTORY_FILE = 'history.jsonl';

/** The fields the curves need, as `dtrain run` writes them (`epoch` counts from 0). */
export type HistoryPoint = Pick<EpochRecord, 'epoch' | 'trainLoss' | 'trainAccuracy' | 'testLoss' | 'testAccuracy' | 'lr'>;

const FIELDS = ['epoch', 'trainLoss', 'trainAccuracy', 'testLoss', 'testAccuracy', 'lr'] as const satisfies ReadonlyArray<keyof HistoryPoint>;

export interface History {
  file: string;
  points: HistoryPoint[];
  /** Lines of earlier runs in the same file (the run dir was reused), not plotted. */
  earlierLines: number;
}

/** RUN_DIR → its history file; a path to the .jsonl itself is taken as it is. */
async function historyFile(path: string): Promise<string> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    throw new UserError(`${path} does not exist`, {exitCode: ExitCode.data, suggestion: 'pass the run directory of a `dtrain run` (--run-dir, default runs/<time>)'});
  }
  return isDir ? join(path, HISTORY_FILE) : path;
}

function parseLine(line: string, where: string): HistoryPoint {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch (error) {
    throw new UserError(`${where} is not valid JSON (${(error as Error).message})`, {exitCode: ExitCode.data, suggestion: 'the history is corrupt; delete the bad line or re-run'});
  }
  if (typeof record !== 'object' || record === null) throw new UserError(`${where} is not a JSON object`, {exitCode: ExitCode.data});
  const fields = record as Record<string, unknown>;
  for (const name of FIELDS) {
    if (typeof fields[name] !== 'number') {
      throw new UserError(`${where} has no numeric ${name}`, {exitCode: ExitCode.data, suggestion: 'is this a history.jsonl written by `dtrain run`?'});
    }
  }
  return Object.fromEntries(FIELDS.map((name) => [name, fields[name]])) as HistoryPoint;
}

/**
 * The epochs of the last run in the file: `dtrain run` appends, so a reused run dir holds several
 * runs one after another, each starting again at a lower epoch.
 */
export async function readHistory(path: string): Promise<History> {
  const file = await historyFile(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new UserError(missing ? `${path} has no ${HISTORY_FILE}` : `cannot read ${file}: ${(error as Error).message}`, {
      exitCode: ExitCode.data,
      suggestion: missing ? '`dtrain run` writes it after each epoch; is this its run dir, and has an epoch finished?' : 'check the permissions',
    });
  }
  const lines = text.split('\n');
  let points: HistoryPoint[] = [];
  let earlierLines = 0;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const point = parseLine(line, `${file} line ${i + 1}`);
    if (points.length > 0 && point.epoch <= points[points.length - 1].epoch) {
      earlierLines += points.length;
      points = [];
    }
    points.push(point);
  });
  if (points.length === 0) {
    throw new UserError(`${file} is empty: no epoch has finished`, {exitCode: ExitCode.data, suggestion: 'plot again once `dtrain run` has finished an epoch'});
  }
  return {file, points, earlierLines};
}
