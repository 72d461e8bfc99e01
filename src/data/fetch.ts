/**
 * Resumable HTTP(S) download of one file with node's http/https: the bytes go to `<dest>.part`, an
 * interrupted transfer continues with a `Range` request (now, by retrying, or on the next run),
 * and the file is renamed to `dest` only once complete and, when an md5 is given, verified.
 */
import {createWriteStream, promises as fs} from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import {Transform} from 'node:stream';
import {pipeline} from 'node:stream/promises';

import {md5File} from './checksum.js';
import type {TransferProgress} from './progress.js';

export type NetworkErrorKind = 'dns' | 'refused' | 'unreachable' | 'timeout' | 'interrupted' | 'http' | 'tls' | 'other';

/** Why a transfer failed, classified so that the caller can say something useful (offline vs. server). */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly kind: NetworkErrorKind,
    readonly url: string,
    readonly details: {code?: string; status?: number; partialBytes?: number; cause?: unknown} = {},
  ) {
    super(message, {cause: details.cause});
    this.name = 'NetworkError';
  }
}

export class ChecksumError extends Error {
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`md5 of ${file} is ${actual}, expected ${expected}`);
    this.name = 'ChecksumError';
  }
}

export interface DownloadOptions {
  /** md5 (hex) the finished file must have; on mismatch the file is deleted and ChecksumError thrown. */
  md5?: string;
  /** No bytes for this long (connecting or mid-transfer) → the attempt fails. Default 30 s. */
  timeoutMs?: number;
  /** Attempts after the first when a transfer breaks off mid-way (each resumes). Default 5. */
  retries?: number;
  /** Pause before a retry. Default 1 s. */
  retryDelayMs?: number;
  maxRedirects?: number;
  onProgress?: (p: TransferProgress) => void;
  /** At most one progress report per this many ms (plus the final one). Default 500. */
  progressIntervalMs?: number;
}

export interface DownloadResult {
  file: string;
  bytes: number;
  /** Bytes already in `<dest>.part` when this call started (0 for a fresh download). */
  resumedFrom: number;
  /** Attempts made (1 when nothing broke). */
  attempts: number;
  /** Times the server ignored or refused a Range request and the download started over. */
  restarts: number;
}

const CODE_KINDS: Record<string, NetworkErrorKind> = {
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
  EAI_FAIL: 'dns',
  EAI_NONAME: 'dns',
  ECONNREFUSED: 'refused',
  ENETUNREACH: 'unreachable',
  EHOSTUNREACH: 'unreachable',
  ENETDOWN: 'unreachable',
  EHOSTDOWN: 'unreachable',
  EADDRNOTAVAIL: 'unreachable',
  ETIMEDOUT: 'timeout',
  ECONNRESET: 'interrupted',
  EPIPE: 'interrupted',
  ECONNABORTED: 'interrupted',
  ERR_STREAM_PREMATURE_CLOSE: 'interrupted',
};

/** Maps a node socket/DNS/TLS error to a NetworkError kind. */
export function classifyNetworkError(error: unknown): NetworkErrorKind {
  if (error instanceof NetworkError) return error.kind;
  const code = (error as {code?: string})?.code ?? '';
  if (code in CODE_KINDS) return CODE_KINDS[code];
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return 'tls';
  if ((error as Error)?.message === 'aborted') return 'interrupted';
  return 'other';
}

function toNetworkError(error: unknown, url: string, partialBytes: number, status?: number): NetworkError {
  if (error instanceof NetworkError) return error;
  const code = (error as {code?: string})?.code;
  const kind = classifyNetworkError(error);
  // Once a server has answered, a broken socket is an interrupted transfer whatever its code.
  const finalKind = status !== undefined && kind !== 'timeout' ? 'interrupted' : kind;
  return new NetworkError((error as Error)?.message ?? String(error), finalKind, url, {code, status, partialBytes, cause: error});
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return 0;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Downloads `url` to `dest` (via `dest.part`), resuming a `.part` left by an earlier run. */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const part = `${dest}.part`;
  const retries = options.retries ?? 5;
  const resumedFrom = await fileSize(part);
  let attempts = 0;
  let restarts = 0;
  let failures = 0;
  for (;;) {
    attempts++;
    const offset = await fileSize(part);
    try {
      const outcome = await attempt(url, part, offset, options);
      if (outcome === 'from-zero') restarts++;
      if (outcome === 'restart') {
        // The server will not continue this .part: start over, once per reason is enough.
        restarts++;
        await fs.rm(part, {force: true});
        if (restarts > 2) throw new NetworkError('server keeps refusing the byte range; cannot download', 'http', url);
        continue;
      }
      break;
    } catch (error) {
      const ne = toNetworkError(error, url, await fileSize(part));
      // Retry only transfers that broke off after the server answered; an unreachable host fails at once.
      if ((ne.kind === 'interrupted' || (ne.kind === 'timeout' && ne.details.status !== undefined) || (ne.kind === 'http' && (ne.details.status ?? 0) >= 500)) && failures < retries) {
        failures++;
        await sleep(options.retryDelayMs ?? 1000);
        continue;
      }
      throw ne;
    }
  }
  if (options.md5) {
    const actual = await md5File(part);
    if (actual.toLowerCase() !== options.md5.toLowerCase()) {
      await fs.rm(part, {force: true});
      throw new ChecksumError(dest, options.md5.toLowerCase(), actual);
    }
  }
  await fs.rename(part, dest);
  return {file: dest, bytes: await fileSize(dest), resumedFrom, attempts, restarts};
}

/** Parses `Content-Range: bytes 100-199/1000` (total may be `*`). */
function parseContentRange(header: string | undefined): {start: number; total?: number} | undefined {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(header?.trim() ?? '');
  if (!m) return undefined;
  return {start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3])};
}

/** One request (following redirects): appends to `part` from `offset`. */
async function attempt(url: string, part: string, offset: number, options: DownloadOptions): Promise<'done' | 'from-zero' | 'restart'> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  let current = url;
  for (let redirects = 0; ; redirects++) {
    const res = await request(current, offset, timeoutMs);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      if (redirects >= (options.maxRedirects ?? 5)) throw new NetworkError(`too many redirects (last: ${current})`, 'http', url, {status});
      current = new URL(res.headers.location, current).toString();
      continue;
    }
    if (status === 416 && offset > 0) {
      res.resume();
      return 'restart';
    }
    if (status !== 200 && status !== 206) {
      res.resume();
      throw new NetworkError(`server answered HTTP ${status} ${res.statusMessage ?? ''}`.trim(), 'http', current, {status});
    }
    let start = 0;
    let total: number | undefined;
    const length = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
    if (status === 206) {
      const range = parseContentRange(res.headers['content-range']);
      if (!range || range.start !== offset) {
        res.resume();
        return 'restart';
      }
      start = offset;
      total = range.total ?? (length !== undefined ? offset + length : undefined);
    } else {
      // 200 to a Range request: the server ignores ranges, so the body is the whole file; overwrite.
      total = length;
    }
    await receive(res, part, start, total, current, options);
    return offset > 0 && start === 0 ? 'from-zero' : 'done';
  }
}

function request(url: string, offset: number, timeoutMs: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (error) {
      reject(new NetworkError(`not a valid URL: ${url}`, 'other', url, {cause: error}));
      return;
    }
    const lib = parsed.protocol === 'https:' ? https : parsed.protocol === 'http:' ? http : undefined;
    if (!lib) {
      reject(new NetworkError(`unsupported URL scheme ${parsed.protocol} (use http or https)`, 'other', url));
      return;
    }
    const headers: Record<string, string> = {'user-agent': 'dtrain', 'accept-encoding': 'identity'};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    // agent:false → one connection per download, closed afterwards (no keep-alive socket holding the process).
    const req = lib.get(parsed, {headers, agent: false}, (res) => {
      // The socket timeout set below stays armed while the body streams, so a stalled transfer fails too.
      resolve(res);
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy(new NetworkError(`no response from ${parsed.host} within ${Math.round(timeoutMs / 1000)} s`, 'timeout', url, {code: 'ETIMEDOUT'}));
    });
    req.on('error', reject);
  });
}

async function receive(
  res: http.IncomingMessage,
  part: string,
  start: number,
  total: number | undefined,
  url: string,
  options: DownloadOptions,
): Promise<void> {
  const began = Date.now();
  const interval = options.progressIntervalMs ?? 500;
  let lastReport = 0;
  let got = 0;
  const report = (done: boolean): void => {
    if (!options.onProgress) return;
    const seconds = Math.max((Date.now() - began) / 1000, 1e-3);
    options.onProgress({received: start + got, total, bytesPerSecond: got / seconds, done});
  };
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      got += chunk.length;
      const now = Date.now();
      if (now - lastReport >= interval) {
        lastReport = now;
        report(false);
      }
      cb(null, chunk);
    },
  });
  // A stalled body: the request's socket timeout (armed in request()) destroys the socket, which errors `res`.
  try {
    await pipeline(res, counter, createWriteStream(part, {flags: start > 0 ? 'a' : 'w'}));
  } catch (error) {
    throw toNetworkError(error, url, start + got, res.statusCode);
  }
  if (total !== undefined && start + got !== total) {
    throw new NetworkError(`transfer ended after ${start + got} of ${total} bytes`, 'interrupted', url, {status: res.statusCode, partialBytes: start + got});
  }
  report(true);
}
