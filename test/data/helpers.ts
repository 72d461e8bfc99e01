/** Shared by the data tests: the real-photo fixture, temp dirs, and a local HTTP server with failure modes. */
import {promises as fs, readFileSync} from 'node:fs';
import http from 'node:http';
import type {AddressInfo} from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

import * as tar from 'tar';

export const FIXTURE = fileURLToPath(new URL('../fixtures/cifar-10-photos-subset-binary.tar.gz', import.meta.url));
export const FIXTURE_MD5 = '57e4d7766028e24bf4886cc721224305';

export async function tempDir(prefix = 'dtrain-data-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** The fixture unpacked with tar itself (independent of dtrain's extraction), once per call. */
export async function extractedFixture(): Promise<string> {
  const dir = await tempDir('dtrain-fixture-');
  await tar.x({file: FIXTURE, cwd: dir});
  return dir;
}

export interface ServedRequest {
  path: string;
  range?: string;
}

export interface TestServer {
  url: (p?: string) => string;
  requests: ServedRequest[];
  close: () => Promise<void>;
}

export interface ServeOptions {
  /** Honour Range requests (default true). */
  ranges?: boolean;
  /** Cut the connection after this many body bytes, on the first request only. */
  cutFirstAt?: number;
  /** Answer nothing at all (to test timeouts). */
  stall?: boolean;
  /** Serve with 404 (any path). */
  notFound?: boolean;
}

/** Serves `body` at /file.tar.gz, and redirects /redirect → /file.tar.gz. */
export async function serve(body: Buffer, options: ServeOptions = {}): Promise<TestServer> {
  const requests: ServedRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({path: req.url ?? '', range: req.headers.range});
    if (options.stall) return;
    if (options.notFound) {
      res.writeHead(404).end('not here');
      return;
    }
    if (req.url === '/redirect') {
      res.writeHead(302, {location: '/file.tar.gz'}).end();
      return;
    }
    const m = options.ranges !== false ? /^bytes=(\d+)-$/.exec(req.headers.range ?? '') : null;
    const start = m ? Number(m[1]) : 0;
    if (m && start >= body.length) {
      res.writeHead(416, {'content-range': `bytes */${body.length}`}).end();
      return;
    }
    const slice = body.subarray(start);
    res.writeHead(m ? 206 : 200, {
      'content-length': String(slice.length),
      'content-type': 'application/gzip',
      ...(m ? {'content-range': `bytes ${start}-${body.length - 1}/${body.length}`} : {}),
      'accept-ranges': options.ranges !== false ? 'bytes' : 'none',
    });
    if (options.cutFirstAt !== undefined && requests.length === 1) {
      // Send part of the body, then drop the connection as a flaky network would.
      res.write(slice.subarray(0, options.cutFirstAt), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(slice);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const {port} = server.address() as AddressInfo;
  return {
    url: (p = '/file.tar.gz') => `http://127.0.0.1:${port}${p}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on which nothing listens (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const {port} = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export const fixtureBytes = (): Buffer => readFileSync(FIXTURE);

/**
 * Temp dirs for one describe block, removed by its `after` hook: `const newDir = tempDirs(after)`.
 */
export function tempDirs(after: (fn: () => Promise<void>) => void): () => Promise<string> {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await fs.rm(d, {recursive: true, force: true});
  });
  return async () => {
    const d = await tempDir();
    dirs.push(d);
    return d;
  };
}
