/**
 * Getting CIFAR-10 into the data dir: already there → nothing to do; else a tarball given with
 * --from-file, or one placed in the data dir by hand, or a (resumable) download; in every case the
 * md5 is checked before anything is extracted, and extraction is atomic (see extract.ts).
 */
import {promises as fs} from 'node:fs';
import path from 'node:path';

import {ExitCode, UserError} from '../cli/errors.js';
import {findCifar10Dir, validateCifar10Dir} from './cifar10.js';
import {isMd5, md5File} from './checksum.js';
import {extractCifar10Tarball, readProvenance} from './extract.js';
import {ChecksumError, downloadFile, NetworkError} from './fetch.js';
import {CIFAR10_MD5, CIFAR10_TARBALL, CIFAR10_URL, defaultDataDir} from './paths.js';
import {formatBytes, type TransferProgress} from './progress.js';

export interface EnsureCifar10Options {
  /** Data dir (holds cifar-10-batches-bin/). Default: defaultDataDir(). */
  dir?: string;
  url?: string;
  /** Expected md5 of the tarball (hex). Default: the official one. */
  md5?: string;
  /** Use this local tarball instead of downloading (md5 still checked; the file is left in place). */
  fromFile?: string;
  /** Replace a dataset that is already there. */
  force?: boolean;
  /** Keep the downloaded tarball after extraction (default: delete it, the extracted files are what is used). */
  keepTarball?: boolean;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
  onProgress?: (p: TransferProgress) => void;
  progressIntervalMs?: number;
  /** Steps worth telling a human ("verifying md5 of …", "extracting …"). */
  onStep?: (message: string) => void;
}

export interface EnsureCifar10Result {
  status: 'present' | 'downloaded' | 'from-file';
  dir: string;
  batchesDir: string;
  train: number;
  test: number;
  /** URL or file the data came from (for 'present': what the cache records, if anything). */
  source?: string;
  md5?: string;
  /** Bytes transferred or read from the tarball. */
  tarballBytes?: number;
  /** Bytes a previous, interrupted run had already fetched. */
  resumedFrom?: number;
}

function counts(files: Array<{split: string; records: number}>): {train: number; test: number} {
  let train = 0;
  let test = 0;
  for (const f of files) {
    if (f.split === 'train') train += f.records;
    else test += f.records;
  }
  return {train, test};
}

function tarballName(url: string): string {
  try {
    const base = path.posix.basename(new URL(url).pathname);
    if (base && /\.(tar\.gz|tgz)$/i.test(base)) return base;
  } catch {
    // An invalid URL is reported by the download itself.
  }
  return CIFAR10_TARBALL;
}

async function exists(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Makes sure a valid CIFAR-10 is in the data dir, fetching it if needed. */
export async function ensureCifar10(options: EnsureCifar10Options = {}): Promise<EnsureCifar10Result> {
  const dir = path.resolve(options.dir ?? defaultDataDir());
  const url = options.url ?? CIFAR10_URL;
  const md5 = (options.md5 ?? CIFAR10_MD5).toLowerCase();
  const step = options.onStep ?? (() => {});
  if (!isMd5(md5)) throw new UserError(`--md5 must be 32 hex digits, got "${options.md5}"`, {exitCode: ExitCode.usage});

  if (!options.force) {
    const found = await findCifar10Dir(dir);
    if (found) {
      try {
        const {batchesDir, files} = await validateCifar10Dir(dir);
        const prov = await readProvenance(batchesDir);
        return {status: 'present', dir, batchesDir, ...counts(files), source: prov?.source, md5: prov?.md5};
      } catch (error) {
        // Broken cache: say why and fetch again rather than fail.
        step(`The dataset in ${found} is not usable (${(error as Error).message}); fetching it again`);
      }
    }
  }

  if (options.fromFile) {
    const file = path.resolve(options.fromFile);
    if (!(await exists(file))) {
      throw new UserError(`--from-file ${file}: no such file`, {exitCode: ExitCode.data});
    }
    return {...(await installTarball(file, dir, md5, {source: file, kind: 'file'}, step)), status: 'from-file'};
  }

  // A tarball put into the data dir by hand (or left by a run that stopped before extracting).
  const name = tarballName(url);
  for (const candidate of new Set([path.join(dir, name), path.join(dir, CIFAR10_TARBALL)])) {
    if (await exists(candidate)) {
      step(`Found ${candidate}; using it instead of downloading`);
      return {...(await installTarball(candidate, dir, md5, {source: candidate, kind: 'file'}, step)), status: 'from-file'};
    }
  }

  await fs.mkdir(dir, {recursive: true});
  const dest = path.join(dir, name);
  let download: Awaited<ReturnType<typeof downloadFile>>;
  try {
    download = await downloadFile(url, dest, {
      md5,
      timeoutMs: options.timeoutMs,
      retries: options.retries,
      retryDelayMs: options.retryDelayMs,
      onProgress: options.onProgress,
      progressIntervalMs: options.progressIntervalMs,
    });
  } catch (error) {
    throw explainDownloadFailure(error, url, dir, dest);
  }
  if (download.resumedFrom > 0) step(`Resumed a partial download (${formatBytes(download.resumedFrom)} already there)`);
  step(`md5 ${md5} verified; extracting into ${dir}`);
  const {batchesDir, files} = await extractCifar10Tarball(dest, dir, {source: url, md5, kind: 'download'});
  if (!options.keepTarball) await fs.rm(dest, {force: true});
  return {status: 'downloaded', dir, batchesDir, ...counts(files), source: url, md5, tarballBytes: download.bytes, resumedFrom: download.resumedFrom};
}

async function installTarball(
  file: string,
  dir: string,
  md5: string,
  provenance: {source: string; kind: 'file'},
  step: (m: string) => void,
): Promise<Omit<EnsureCifar10Result, 'status'>> {
  step(`Verifying md5 of ${file}`);
  const actual = await md5File(file);
  if (actual !== md5) {
    // Not ours to delete: the user put it there.
    throw new UserError(`md5 of ${file} is ${actual}, expected ${md5}: not the expected tarball (corrupt or a different file); nothing was extracted`, {
      exitCode: ExitCode.data,
      suggestion: `Replace or delete ${file} and fetch it again; if it is a different CIFAR-10 tarball on purpose, pass --md5 ${actual}`,
    });
  }
  step(`md5 ${md5} verified; extracting into ${dir}`);
  const {batchesDir, files} = await extractCifar10Tarball(file, dir, {...provenance, md5});
  return {dir, batchesDir, ...counts(files), source: file, md5, tarballBytes: (await fs.stat(file)).size};
}

/** Turns a transfer failure into one line that says what happened and what to do. */
export function explainDownloadFailure(error: unknown, url: string, dir: string, dest: string): Error {
  const byHand = `Offline? Train with \`--data synthetic\`, or get ${CIFAR10_TARBALL} another way and run \`dtrain data download --from-file PATH\` (or put it in ${dir})`;
  if (error instanceof ChecksumError) {
    return new UserError(`Downloaded ${url} but its md5 is ${error.actual}, expected ${error.expected}; the file was removed and nothing was extracted`, {
      exitCode: ExitCode.data,
      suggestion: 'Check --url and --md5; run the command again to retry (a proxy or captive portal can also return a different file)',
    });
  }
  if (!(error instanceof NetworkError)) return error as Error;
  let host = url;
  try {
    host = new URL(url).host;
  } catch {
    // keep the URL
  }
  const code = error.details.code ? ` (${error.details.code})` : '';
  switch (error.kind) {
    case 'dns':
      return new UserError(`Cannot download CIFAR-10: host ${host} not found${code}, no network or no DNS. ${byHand}`, {exitCode: ExitCode.network});
    case 'refused':
      return new UserError(`Cannot download CIFAR-10: connection to ${host} refused${code}. ${byHand}`, {exitCode: ExitCode.network});
    case 'unreachable':
      return new UserError(`Cannot download CIFAR-10: ${host} unreachable${code}, no network route. ${byHand}`, {exitCode: ExitCode.network});
    case 'timeout':
      return new UserError(`Cannot download CIFAR-10: ${error.message}. ${byHand}`, {exitCode: ExitCode.network});
    case 'interrupted': {
      const part = error.details.partialBytes ? ` after ${formatBytes(error.details.partialBytes)}` : '';
      return new UserError(`Download of ${url} broke off${part} (${error.message}); the partial file ${dest}.part is kept`, {
        exitCode: ExitCode.network,
        suggestion: `Run the same command again to resume. ${byHand}`,
      });
    }
    case 'http':
      return new UserError(`Cannot download ${url}: ${error.message}`, {exitCode: ExitCode.network, suggestion: `Check --url. ${byHand}`});
    case 'tls':
      return new UserError(`Cannot download ${url}: TLS failure (${error.message})`, {
        exitCode: ExitCode.network,
        suggestion: `A proxy intercepting HTTPS? Set NODE_EXTRA_CA_CERTS to its certificate. ${byHand}`,
      });
    default:
      return new UserError(`Cannot download ${url}: ${error.message}`, {exitCode: ExitCode.network, suggestion: byHand});
  }
}
