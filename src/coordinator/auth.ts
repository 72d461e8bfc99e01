/**
 * Who may talk to the coordinator: a shared cluster token in every call's metadata (checked by a
 * server interceptor, so no handler runs for a refused call), and optional TLS for the channel.
 * See docs/operations.md (Security).
 */
import {createHash, randomBytes, timingSafeEqual} from 'node:crypto';
import {readFile} from 'node:fs/promises';
import {isIP} from 'node:net';

import {type ChannelCredentials, credentials, type Interceptor, InterceptingCall, Metadata, ServerCredentials, ServerInterceptingCall, type ServerInterceptor, status as GrpcStatus} from '@grpc/grpc-js';

import {ExitCode, UserError} from '../cli/errors.js';

/** The metadata key the token travels in (gRPC's conventional one; lower case as HTTP/2 requires). */
export const TOKEN_METADATA_KEY = 'authorization';
const BEARER = 'Bearer ';

/** What a client needs to reach a coordinator: the cluster token and, for a TLS coordinator, the CA that signed its certificate. */
export interface ClientSecurity {
  token?: string;
  /** PEM; set: the channel is TLS and the coordinator's certificate must chain to it. */
  tlsCa?: Buffer;
}

/** A fresh random cluster token (256 bits), for the clusters dtrain starts itself. */
export function newClusterToken(): string {
  return randomBytes(32).toString('base64url');
}

async function readSecretFile(path: string, what: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new UserError(`cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {exitCode: ExitCode.usage, suggestion: `check ${flag}`, cause: err});
  }
}

/** The token from --token-file, else $DTRAIN_TOKEN, else `fallback` (the token file of a local cluster); undefined when none. */
export async function resolveToken(tokenFile: string | undefined, fallback?: () => Promise<string | undefined>): Promise<string | undefined> {
  const token = tokenFile ? (await readSecretFile(tokenFile, 'token file', '--token-file')).toString('utf8').trim() : (process.env.DTRAIN_TOKEN?.trim() ?? (await fallback?.()));
  if (token === '') throw new UserError(`the cluster token ${tokenFile ? `in ${tokenFile}` : 'in DTRAIN_TOKEN'} is empty`, {exitCode: ExitCode.usage, suggestion: 'put the cluster\'s token there, or unset it to go without one (loopback only)'});
  return token;
}

/** --token-file / DTRAIN_TOKEN, --tls-ca / DTRAIN_TLS_CA → what coordinatorClient needs. */
export async function resolveClientSecurity(flags: {tokenFile?: string; tlsCa?: string}, fallbackToken?: () => Promise<string | undefined>): Promise<ClientSecurity> {
  const caFile = flags.tlsCa ?? process.env.DTRAIN_TLS_CA;
  return {token: await resolveToken(flags.tokenFile, fallbackToken), tlsCa: caFile ? await readSecretFile(caFile, 'TLS CA certificate', '--tls-ca or DTRAIN_TLS_CA') : undefined};
}

/** Insecure or TLS channel credentials for a client. */
export function channelCredentials(security: ClientSecurity): ChannelCredentials {
  return security.tlsCa ? credentials.createSsl(security.tlsCa) : credentials.createInsecure();
}

/** A client interceptor that puts the token in every call's metadata (call credentials would need TLS; the token must work without it too). */
export function tokenInterceptor(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set(TOKEN_METADATA_KEY, BEARER + token);
        next(metadata, listener);
      },
    });
}

/** --tls-cert/--tls-key → TLS server credentials (no client certificates: clients prove themselves with the token). */
export async function serverCredentials(tls: {cert?: string; key?: string}): Promise<ServerCredentials> {
  if (!tls.cert && !tls.key) return ServerCredentials.createInsecure();
  if (!tls.cert || !tls.key) throw new UserError('TLS needs both --tls-cert and --tls-key', {exitCode: ExitCode.usage});
  const [cert, key] = await Promise.all([readSecretFile(tls.cert, 'TLS certificate', '--tls-cert'), readSecretFile(tls.key, 'TLS private key', '--tls-key')]);
  return ServerCredentials.createSsl(null, [{cert_chain: cert, private_key: key}], false);
}

/** Equal strings, in time that does not depend on where they differ (hashing first makes the lengths equal too). */
export function tokenMatches(expected: string, given: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(given));
}

/** Whether a host (name or address, IPv6 bracketed or not) is this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').replace(/^::ffff:/i, '');
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1' || h === 'localhost';
}

/** Whether a grpc-js peer string (127.0.0.1:5000, ipv6:[::1]:5000, unix:…) is this machine. */
export function isLoopbackPeer(peer: string): boolean {
  return peer.startsWith('unix:') || isLoopbackHost(peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, ''));
}

/** What a coordinator without a token tells callers from other machines (the client's advice differs). */
export const NO_TOKEN_REFUSAL = 'this coordinator has no token and accepts only loopback callers';

/** Why a call is refused, or undefined when it may go on. Without a token only this machine may call. */
export function refusal(expected: string | undefined, metadata: Metadata, peer: string): string | undefined {
  if (expected === undefined) return isLoopbackPeer(peer) ? undefined : NO_TOKEN_REFUSAL;
  const values = metadata.get(TOKEN_METADATA_KEY);
  const given = typeof values[0] === 'string' && values[0].startsWith(BEARER) ? values[0].slice(BEARER.length) : undefined;
  if (given === undefined) return 'missing token';
  return tokenMatches(expected, given) ? undefined : 'wrong token';
}

/**
 * A server interceptor that ends every call with UNAUTHENTICATED before its handler runs (so a
 * refused call changes nothing) unless it carries the token; logs the peer, the RPC and why,
 * never the token.
 */
export function authInterceptor(expected: string | undefined, log: (line: string) => void): ServerInterceptor {
  const logRefusal = rateLimitedLog(log, REFUSAL_LOGS_PER_MINUTE, 60_000);
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const why = refusal(expected, metadata, call.getPeer());
            if (why === undefined) {
              nextMetadata(metadata);
              return;
            }
            logRefusal(`refused ${method.path} from ${call.getPeer()}: ${why}`);
            call.sendStatus({code: GrpcStatus.UNAUTHENTICATED, details: why, metadata: new Metadata()});
          },
        });
      },
    });
}

/** Refused calls logged one by one per minute; beyond that they are counted, so a flood of bad calls cannot flood the log. */
const REFUSAL_LOGS_PER_MINUTE = 20;

/** `log`, at most `perWindow` lines per windowMs; the next line after a window says how many were left out. */
export function rateLimitedLog(log: (line: string) => void, perWindow: number, windowMs: number, now: () => number = Date.now): (line: string) => void {
  let windowStart = -Infinity;
  let logged = 0;
  let skipped = 0;
  return (line) => {
    if (now() - windowStart >= windowMs) {
      if (skipped > 0) log(`${skipped} more like it in the last ${Math.round(windowMs / 1000)} s, not logged one by one`);
      windowStart = now();
      logged = 0;
      skipped = 0;
    }
    if (logged++ < perWindow) log(line);
    else skipped++;
  };
}
