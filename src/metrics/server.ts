/**
 * A read-only `/metrics` endpoint per process. node:http rather than a framework: two routes, no
 * dependencies, and nothing a scraper can change (GET and HEAD only; every other method gets 405).
 */
import {createServer, type IncomingMessage, type ServerResponse} from 'node:http';
import type {AddressInfo} from 'node:net';
import {hostname} from 'node:os';

import type {Registry} from 'prom-client';

/** Default metrics ports. Locally every process shares one host, so worker i takes 9401 + i; in Kubernetes each pod has its own IP and every process uses 9400. */
export const METRICS_PORTS = {coordinator: 9400, firstWorker: 9401} as const;

/** Metrics port of the i-th worker (0-based, in start order) of a local cluster whose coordinator serves on `base` (0: every process takes a free port). */
export function localWorkerMetricsPort(index: number, base: number = METRICS_PORTS.coordinator): number {
  return base === 0 ? 0 : base + (METRICS_PORTS.firstWorker - METRICS_PORTS.coordinator) + index;
}

const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::';

/** The URL others scrape: a wildcard bind address (0.0.0.0, ::) is replaced by `advertise` (e.g. the pod IP), else the machine's hostname. */
export function advertisedMetricsUrl(server: MetricsServer, bindHost: string, advertise?: string): string {
  if (!isWildcard(bindHost)) return server.url;
  const name = advertise && !isWildcard(advertise) ? advertise : hostname();
  const host = name.includes(':') ? `[${name}]` : name;
  return `http://${host}:${server.port}/metrics`;
}

export interface MetricsServerOptions {
  /** 0 takes a free port (the returned url says which). */
  port: number;
  /** Interface to bind; 127.0.0.1 by default, 0.0.0.0 in containers. */
  host?: string;
}

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9400/metrics */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const ROUTES = new Set(['/metrics', '/healthz']);

async function handle(registry: Registry, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (!ROUTES.has(path)) {
    res.writeHead(404, {'content-type': 'text/plain'}).end('not found: try GET /metrics\n');
  } else if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, {'content-type': 'text/plain', allow: 'GET, HEAD'}).end('method not allowed: read-only endpoint\n');
  } else if (path === '/healthz') {
    res.writeHead(200, {'content-type': 'text/plain'}).end('ok\n');
  } else {
    // HEAD gets the same headers; node:http leaves out the body itself.
    const body = await registry.metrics();
    res.writeHead(200, {'content-type': registry.contentType}).end(body);
  }
}

export async function startMetricsServer(registry: Registry, options: MetricsServerOptions): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    handle(registry, req, res).catch((err: unknown) => {
      // A failing collect callback must not take the process down; the scrape shows the error.
      if (!res.headersSent) res.writeHead(500, {'content-type': 'text/plain'});
      res.end(`metrics collection failed: ${(err as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the port is in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new Error(`cannot serve metrics on ${host}:${options.port}: ${why} (pick another --metrics-port; 0 takes a free one)`, {cause: err}));
    });
    server.listen(options.port, host, () => resolve());
  });
  const {port} = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/metrics`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Prometheus keeps connections alive; without this, close() waits for them to time out.
        server.closeAllConnections();
      }),
  };
}
