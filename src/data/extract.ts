/**
 * Unpacking a CIFAR-10 tarball into the data dir, atomically: everything is extracted and checked in
 * a temporary folder beside the target, then renamed into place, so an interrupted or failed
 * extraction never leaves a half-written dataset where readers look.
 */
import {promises as fs} from 'node:fs';
import path from 'node:path';

import * as tar from 'tar';

import {ExitCode, UserError} from '../cli/errors.js';
import {isAlive} from '../util/process.js';
import {type Cifar10FileInfo, CIFAR10_SUBDIR, validateCifar10Dir} from './cifar10.js';

/** Written inside the extracted folder: where the data came from, for `dtrain data info`. */
export const PROVENANCE_FILE = '.dtrain-source.json';

export interface Provenance {
  source: string;
  md5?: string;
  kind: 'download' | 'file' | 'synthetic';
  createdAt: string;
}

const TMP_PREFIX = '.extract-';

/** Extracts `tarball` (.tar.gz holding cifar-10-batches-bin/) into `dir/cifar-10-batches-bin`. */
export async function extractCifar10Tarball(tarball: string, dir: string, provenance: Omit<Provenance, 'createdAt'>): Promise<{batchesDir: string; files: Cifar10FileInfo[]}> {
  await fs.mkdir(dir, {recursive: true});
  await removeStaleTemps(dir);
  const tmp = await fs.mkdtemp(path.join(dir, `${TMP_PREFIX}${process.pid}-`));
  const target = path.join(dir, CIFAR10_SUBDIR);
  try {
    try {
      // Read the whole archive once before writing anything: tar.x rejects on a corrupt stream while
      // its file writes are still in flight (they would race the cleanup below), tar.t writes nothing.
      await tar.t({file: tarball, strict: true});
      await tar.x({
        file: tarball,
        cwd: tmp,
        strict: true,
        preserveOwner: false,
        // Only the dataset folder; the official tarball holds nothing else we need.
        filter: (p) => p.replace(/^\.\//, '').split('/')[0] === CIFAR10_SUBDIR,
      });
    } catch (error) {
      throw new UserError(`Could not extract ${tarball}: ${(error as Error).message}`, {
        exitCode: ExitCode.data,
        suggestion: 'The file is not a valid .tar.gz; delete it and download it again',
        cause: error,
      });
    }
    const extracted = path.join(tmp, CIFAR10_SUBDIR);
    try {
      await fs.access(extracted);
    } catch {
      throw new UserError(`${tarball} holds no ${CIFAR10_SUBDIR}/ folder: it is not the CIFAR-10 binary version`, {
        exitCode: ExitCode.data,
        suggestion: 'Use cifar-10-binary.tar.gz (the "binary version" on https://www.cs.toronto.edu/~kriz/cifar.html), not the Python or MATLAB one',
      });
    }
    // Check before publishing: a bad archive must not replace a good cache.
    const {files} = await validateCifar10Dir(extracted);
    const full: Provenance = {...provenance, createdAt: new Date().toISOString()};
    await fs.writeFile(path.join(extracted, PROVENANCE_FILE), JSON.stringify(full, null, 2) + '\n');
    await publish(extracted, target, tmp);
    return {batchesDir: target, files: files.map((f) => ({...f, file: path.join(target, path.basename(f.file))}))};
  } finally {
    // Retries: after an I/O error mid-extraction tar may still be closing files in there.
    await fs.rm(tmp, {recursive: true, force: true, maxRetries: 10, retryDelay: 100});
  }
}

/** Renames `from` to `target`, moving an existing target aside first (into `tmp`, removed afterwards). */
async function publish(from: string, target: string, tmp: string): Promise<void> {
  try {
    await fs.rename(from, target);
    return;
  } catch (error) {
    const code = (error as {code?: string}).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') throw error;
  }
  // Replacing a (stale or invalid) dataset: the target is missing only between these two renames.
  await fs.rename(target, path.join(tmp, 'replaced'));
  await fs.rename(from, target);
}

/** Temp folders of extractions whose process died (crash, kill -9); live ones are left alone. */
async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    const pid = Number(name.slice(TMP_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) continue;
    if (pid === process.pid) continue;
    await fs.rm(path.join(dir, name), {recursive: true, force: true});
  }
}

export async function readProvenance(batchesDir: string): Promise<Provenance | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(batchesDir, PROVENANCE_FILE), 'utf8')) as Provenance;
  } catch {
    return undefined;
  }
}
