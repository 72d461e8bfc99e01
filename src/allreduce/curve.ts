/**
 * CURVE on the ring (docs/operations.md, Security): every rank's inbox is a CURVE server (traffic
 * encrypted, the server authenticated by its key), and a ZAP handler — ZeroMQ's authentication
 * hook, one per process at inproc://zeromq.zap.01 — lets a connection through only when its client
 * key is one the job gave this inbox (the predecessor's). Anything else fails the handshake, so
 * its bytes never reach the all-reduce.
 */
import {curveKeyPair, Reply} from 'zeromq';

/** Z85 keys, 40 characters each (zeromq's curveKeyPair). */
export interface CurveKeyPair {
  publicKey: string;
  secretKey: string;
}

/** This rank's key pair and every rank's public key in rank order (what the coordinator issues per job). */
export interface RingCurveKeys extends CurveKeyPair {
  peers: readonly string[];
}

export const newCurveKeyPair = (): CurveKeyPair => curveKeyPair();

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
/**
 * How long the ZAP handler outlives the last inbox. ZeroMQ tears a closed inbox's sessions down on
 * its I/O thread, their ZAP pipes included; unbinding the handler under them aborted libzmq
 * ("Assertion failed: _state == term_ack_sent || _state == term_req_sent2", pipe.cpp) after a
 * regroup. An inbox opened meanwhile (the next ring of a regroup) keeps the handler.
 */
const ZAP_GRACE_MS = 1000;
/** Refusals logged per inbox before they are only counted (a reconnecting stranger retries every 100 ms). */
const MAX_REFUSAL_LOGS = 4;

/** An inbox's registration with the process's ZAP handler. */
export interface ZapDomain {
  /** The zapDomain to set on the inbox socket. */
  readonly domain: string;
  /** Replaces the client keys (Z85) this inbox accepts; none until called. */
  allow(publicKeys: readonly string[]): void;
  /** Connections refused so far. */
  readonly refused: number;
  close(): void;
}

interface DomainState {
  keys: Set<string>;
  refused: number;
  log: (line: string) => void;
  label: string;
}

const domains = new Map<string, DomainState>();
let handler: {socket: Reply; bound: Promise<void>} | undefined;
/** The last handler's teardown: the inproc endpoint is free for the next one only after its unbind. */
let released: Promise<void> = Promise.resolve();
let domainCounter = 0;
let closing: NodeJS.Timeout | undefined;

/**
 * Registers an inbox with the ZAP handler, starting the handler first if this is the first one
 * (so it is bound before the inbox can see a handshake). `label` names the inbox in refusal logs.
 */
export async function openZapDomain(label: string, log: (line: string) => void): Promise<ZapDomain> {
  const domain = `dtrain-ring-${process.pid}-${++domainCounter}`;
  const state: DomainState = {keys: new Set(), refused: 0, log, label};
  domains.set(domain, state);
  clearTimeout(closing);
  closing = undefined;
  handler ??= startHandler();
  try {
    await handler.bound;
  } catch (err) {
    domains.delete(domain);
    throw err;
  }
  return {
    domain,
    allow: (keys) => {
      state.keys = new Set(keys);
    },
    get refused() {
      return state.refused;
    },
    close: () => {
      if (!domains.delete(domain)) return;
      // The handler's pending receive would keep the process alive: it goes with the last inbox,
      // after a grace period (ZAP_GRACE_MS).
      if (domains.size === 0 && handler && !closing) closing = setTimeout(closeHandler, ZAP_GRACE_MS);
    },
  };
}

function closeHandler(): void {
  closing = undefined;
  if (domains.size > 0 || !handler) return;
  const {socket, bound} = handler;
  handler = undefined;
  released = bound
    .then(() => socket.unbind(ZAP_ENDPOINT))
    .catch(() => {})
    .then(() => socket.close());
}

function startHandler(): {socket: Reply; bound: Promise<void>} {
  const socket = new Reply({linger: 0});
  const bound = released.then(() => socket.bind(ZAP_ENDPOINT)).then(() => void serve(socket));
  return {socket, bound};
}

/** ZAP (ZeroMQ RFC 27): request [version, id, domain, address, identity, mechanism, credentials…] → reply [version, id, status, text, user id, metadata]. */
async function serve(socket: Reply): Promise<void> {
  try {
    for await (const [version, id, domainFrame, address, , mechanism, key] of socket) {
      const domain = domainFrame?.toString('utf8') ?? '';
      const state = domains.get(domain);
      const clientKey = mechanism?.toString('utf8') === 'CURVE' && key?.length === 32 ? z85Encode(key) : undefined;
      const ok = Boolean(state && clientKey && state.keys.has(clientKey));
      if (!ok && state && state.refused++ < MAX_REFUSAL_LOGS) {
        state.log(`${state.label} refused a ring connection from ${address?.toString('utf8') || 'an unknown address'}: ${clientKey ? 'its CURVE key is not this job\'s' : `mechanism ${mechanism?.toString('utf8')}`}`);
      }
      await socket.send([version ?? '1.0', id ?? '', ok ? '200' : '400', ok ? 'OK' : 'not a key of this job', '', '']);
    }
  } catch {
    // Closed with the last inbox.
  }
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** Z85 (ZeroMQ RFC 32) of bytes whose length is a multiple of 4: how curveKeyPair writes keys. */
export function z85Encode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0;
    let block = '';
    for (let j = 0; j < 5; j++) {
      block = Z85[value % 85] + block;
      value = Math.floor(value / 85);
    }
    out += block;
  }
  return out;
}
