/**
 * Ring all-reduce over ZeroMQ TCP: reduce-scatter then all-gather on a flat Float32Array, every
 * message tagged and checked, a timeout that names the silent peer. See docs/allreduce.md.
 *
 * Sockets: each rank binds one PULL (its inbox, fed by its predecessor) and connects one PUSH to
 * its successor's inbox. PUSH/PULL gives back-pressure (send() waits at the high-water mark) and
 * tolerates reconnects; the PULL also accepts strangers, which is why every message is checked —
 * unless the ring runs CURVE (options.curve, src/allreduce/curve.ts): then only the predecessor's
 * key gets through the handshake and every byte on the wire is encrypted.
 */
import {Pull, Push} from 'zeromq';

import {ExitCode, UserError} from '../cli/errors.js';
import {openZapDomain, type RingCurveKeys, type ZapDomain} from './curve.js';
import {accumulateHalf, decodeHalf, encodeHalf, HALF_MAX} from './fp16.js';
import {decodeHeader, encodeHeader, type Header, jobHash, Phase, phaseName} from './header.js';
import {mod, nextTransfer, receiveSchedule, segmentChunks, type Transfer} from './schedule.js';

/**
 * Measured on loopback (docs/allreduce.md): 512 KiB–4 MiB cost the least CPU per byte, 256 KiB and
 * below noticeably more; the low end of that range keeps the pipeline going on small segments.
 */
export const DEFAULT_CHUNK_BYTES = 512 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_LINGER_MS = 5_000;
/** Drop notices per all-reduce call before they are only counted, so a flood cannot flood stderr. */
const MAX_DROP_LOGS = 8;

export interface AllReduceTag {
  job: string;
  /** Training step, 0 … 2^32−1: messages from any other step are stale and dropped. */
  step: number;
}

export interface RingPosition {
  rank: number;
  worldSize: number;
}

export interface RingOptions extends RingPosition {
  /** Interface to bind the inbox on (default 127.0.0.1). */
  bindHost?: string;
  /** Host put in the reported endpoint when bindHost is a wildcard (default bindHost). */
  advertiseHost?: string;
  /** Inbox port; 0 (default) takes an ephemeral one, reported by start(). */
  port?: number;
  /** Chunk size; must be the same on every rank, since both ends of a link derive the message stream from it. */
  chunkBytes?: number;
  /**
   * How reduce-scatter partial sums travel (the same on every rank). 'float64' (default): sums of
   * float32 values are then exact in all but extreme cases, so the result is the exactly rounded
   * mean whatever the ring order — N workers equal one process summing N shards, bit for bit. It
   * sends twice the bytes of 'float32' in reduce-scatter's steps after the first (there are none
   * with 2 ranks); 'float32' sums depend on the order each segment went round the ring.
   */
  partialSums?: PartialSums;
  /**
   * What travels between ranks (the same on every rank), for every call unless the call says
   * otherwise: 'none' (default) as `partialSums` says; 'fp16' IEEE half precision in both phases,
   * 2 bytes per value. With fp16 each rank decodes, adds its own share (value / N for a mean) in
   * float32 and re-encodes for the next hop; the rank that completes a segment rounds the mean to
   * half and keeps exactly what it sends, so every rank still ends with the same bits. A result
   * that is not finite (a share or partial sum beyond ±65504, or a non-finite input) fails the call
   * with NonFiniteAllReduceError on every rank. `partialSums` does not apply.
   */
  compression?: Compression;
  /** Longest wait for the predecessor's next message before AllReduceTimeoutError. */
  timeoutMs?: number;
  /** How long close() lets queued messages drain to the successor (it may still need the last ones). */
  lingerMs?: number;
  /** ZeroMQ high-water marks in messages (0 = unlimited) and kernel TCP buffer sizes in bytes (-1 = OS default). */
  sendHighWaterMark?: number;
  receiveHighWaterMark?: number;
  socketBufferBytes?: number;
  /** Where drop notices go (default stderr). */
  logger?: (line: string) => void;
  /** CURVE: this rank's key pair and every rank's public key; the inbox then accepts only its predecessor's key. */
  curve?: RingCurveKeys;
}

export type ReduceOp = 'sum' | 'mean';
export type PartialSums = 'float64' | 'float32';
export const COMPRESSIONS = ['none', 'fp16'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

/** Per call: overrides the ring's compression (e.g. statistics that must stay exact on a compressed ring). */
export interface AllReduceCallOptions {
  compression?: Compression;
}

/**
 * An fp16 all-reduce whose result holds values that are not finite: a share or partial sum beyond
 * half precision's ±65504 (or ±Infinity/NaN in some rank's input). Every rank gets the same result,
 * so every rank throws this for the same call; the ring itself stays usable.
 */
export class NonFiniteAllReduceError extends UserError {
  constructor(
    readonly rank: number,
    readonly count: number,
    readonly firstIndex: number,
    readonly firstValue: number,
    /** Finite values this rank encoded that overflowed half precision (0 on every rank: some input was already non-finite). */
    readonly overflowedHere: number,
    tag: AllReduceTag,
  ) {
    super(
      `fp16 all-reduce in job ${tag.job} step ${tag.step} gave ${count} non-finite value${count === 1 ? '' : 's'} (first: element ${firstIndex} = ${firstValue}); ` +
        `${overflowedHere} value${overflowedHere === 1 ? '' : 's'} overflowed half precision (|x| > ${HALF_MAX}) on rank ${rank} (where no rank reports one, some rank's own input was already non-finite)`,
      {suggestion: 'gradients beyond ±65504 do not fit in fp16: train with --grad-compression none, or lower --lr if the loss is diverging'},
    );
    this.name = 'NonFiniteAllReduceError';
  }
}

/** The predecessor sent nothing usable for timeoutMs: names that rank and its endpoint. */
export class AllReduceTimeoutError extends UserError {
  constructor(
    readonly rank: number,
    readonly peerRank: number,
    readonly peerEndpoint: string | undefined,
    readonly timeoutMs: number,
    detail: string,
  ) {
    super(`all-reduce timed out on rank ${rank}: nothing usable from predecessor rank ${peerRank} (${peerEndpoint ?? 'endpoint unknown: it never said hello'}) for ${timeoutMs} ms; ${detail}`, {
      exitCode: ExitCode.network,
      suggestion: `check that rank ${peerRank} is running, reachable at its endpoint, and on the same job, step and chunk size`,
    });
    this.name = 'AllReduceTimeoutError';
  }
}

export class RingAllReduce {
  private position: RingPosition;
  private readonly chunkElems: number;
  private readonly timeoutMs: number;
  private readonly partialBytes: 4 | 8;
  private readonly defaultCompression: Compression;
  private readonly log: (line: string) => void;
  private pull?: Pull;
  private push?: Push;
  private curve?: RingCurveKeys;
  private zap?: ZapDomain;
  private outbox: Outbox | undefined;
  private boundEndpoint?: string;
  private starting?: Promise<string>;
  private predecessorEndpoint?: string;
  private successorEndpoint?: string;
  private broken?: string;
  private busy = false;
  private closed = false;
  /** Where float64 partial sums are made, reused from call to call (see ExactCodec). */
  private partialScratch = new Float64Array(0);
  private dropLogs = 0;
  /** Messages dropped as malformed, stale or unexpected since construction. */
  dropped = 0;
  /** Running totals for metrics: payload bytes sent and accepted, and seconds blocked in receive (waiting for the predecessor). */
  readonly totals = {sentBytes: 0, receivedBytes: 0, waitSeconds: 0};

  constructor(private readonly options: RingOptions) {
    checkPosition(options);
    this.position = {rank: options.rank, worldSize: options.worldSize};
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isInteger(chunkBytes) || chunkBytes < 4) throw new RangeError(`chunkBytes must be an integer ≥ 4, got ${chunkBytes}`);
    this.chunkElems = Math.floor(chunkBytes / 4);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${this.timeoutMs}`);
    this.partialBytes = (options.partialSums ?? 'float64') === 'float64' ? 8 : 4;
    this.defaultCompression = checkCompression(options.compression ?? 'none');
    this.log = options.logger ?? ((line) => process.stderr.write(`dtrain allreduce: ${line}\n`));
    this.curve = options.curve;
    if (this.curve) checkCurvePeers(this.curve, this.position.worldSize);
  }

  get rank(): number {
    return this.position.rank;
  }

  /** What every call sends between ranks unless it says otherwise. */
  get compression(): Compression {
    return this.defaultCompression;
  }

  get worldSize(): number {
    return this.position.worldSize;
  }

  /** The inbox endpoint (after start()), to hand to the predecessor. */
  get endpoint(): string | undefined {
    return this.boundEndpoint;
  }

  /** Connections the inbox refused at the CURVE handshake (not this job's key, or not CURVE). */
  get refusedConnections(): number {
    return this.zap?.refused ?? 0;
  }

  /** Binds the inbox; returns its endpoint (tcp://host:port, the real port when port 0 was asked). Idempotent. */
  start(): Promise<string> {
    if (this.closed) return Promise.reject(new Error('RingAllReduce is closed'));
    // Concurrent callers share one bind; a failed bind may be retried.
    this.starting ??= this.bind().catch((err: unknown) => {
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  private async bind(): Promise<string> {
    const o = this.options;
    const pull = new Pull({linger: 0, receiveHighWaterMark: o.receiveHighWaterMark ?? 1000, receiveBufferSize: o.socketBufferBytes ?? -1});
    const host = o.bindHost ?? '127.0.0.1';
    try {
      if (this.curve) {
        // The ZAP handler must be up before the inbox can see a handshake.
        this.zap = await openZapDomain(`rank ${this.rank}`, this.log);
        this.zap.allow([this.curve.peers[mod(this.rank - 1, this.worldSize)]]);
        pull.curveServer = true;
        pull.curveSecretKey = this.curve.secretKey;
        pull.zapDomain = this.zap.domain;
      }
      await pull.bind(`tcp://${host}:${o.port ?? 0}`);
    } catch (err) {
      pull.close();
      this.zap?.close();
      throw new UserError(`rank ${this.rank} cannot bind its all-reduce endpoint tcp://${host}:${o.port ?? 0}: ${(err as Error).message}`, {exitCode: ExitCode.network, cause: err});
    }
    if (this.closed) {
      pull.close();
      this.zap?.close();
      throw new Error('RingAllReduce was closed while starting');
    }
    this.pull = pull;
    const bound = pull.lastEndpoint ?? `tcp://${host}:${o.port ?? 0}`;
    this.boundEndpoint = o.advertiseHost ? bound.replace(/^tcp:\/\/.*:(\d+)$/, `tcp://${o.advertiseHost}:$1`) : bound;
    this.sayHello();
    return this.boundEndpoint;
  }

  /**
   * Joins the ring: `peers` is every rank's endpoint in rank order (so a timeout can name the
   * predecessor's), or just the successor's endpoint. Calling it again re-forms the ring, optionally
   * at a new rank / world size (a CURVE ring then needs the new ring's keys); the inbox (and so
   * this rank's endpoint) stays the same.
   */
  connect(peers: readonly string[] | string, position?: RingPosition, curve?: RingCurveKeys): void {
    if (this.closed) throw new Error('RingAllReduce is closed');
    if (position) {
      checkPosition(position);
      this.position = {rank: position.rank, worldSize: position.worldSize};
    }
    const {rank, worldSize} = this.position;
    if (curve) {
      if (!this.curve || curve.secretKey !== this.curve.secretKey) throw new Error('connect: a CURVE ring keeps its inbox key pair; only the peers\' keys may change');
      this.curve = curve;
    }
    if (this.curve) {
      checkCurvePeers(this.curve, worldSize);
      this.zap?.allow([this.curve.peers[mod(rank - 1, worldSize)]]);
    }
    if (typeof peers !== 'string' && peers.length !== worldSize) throw new RangeError(`connect: ${peers.length} peer endpoints for a world of ${worldSize}`);
    // The old successor may still need this rank's last messages, unless the old ring is broken.
    this.closePush(this.broken ? 0 : undefined);
    this.broken = undefined;
    this.predecessorEndpoint = typeof peers === 'string' ? undefined : peers[mod(rank - 1, worldSize)];
    this.successorEndpoint = typeof peers === 'string' ? peers : peers[mod(rank + 1, worldSize)];
    if (worldSize === 1) return;
    const o = this.options;
    const push = new Push({linger: o.lingerMs ?? DEFAULT_LINGER_MS, sendHighWaterMark: o.sendHighWaterMark ?? 1000, sendBufferSize: o.socketBufferBytes ?? -1});
    if (this.curve) {
      push.curveServerKey = this.curve.peers[mod(rank + 1, worldSize)];
      push.curvePublicKey = this.curve.publicKey;
      push.curveSecretKey = this.curve.secretKey;
    }
    push.connect(this.successorEndpoint);
    this.push = push;
    this.outbox = new Outbox(push, (err) => {
      this.broken ??= `sending to successor rank ${mod(rank + 1, worldSize)} (${this.successorEndpoint}) failed: ${err.message}`;
    });
    this.sayHello();
  }

  /** Tells the successor who feeds it, so its timeout can name this endpoint even when it was only given its own successor. */
  private sayHello(): void {
    if (!this.boundEndpoint || !this.outbox) return;
    this.outbox.enqueue([encodeHeader({...HELLO, sender: this.rank, worldSize: this.worldSize}), Buffer.from(this.boundEndpoint, 'utf8')]);
  }

  /** Elementwise mean over all ranks, in place; bitwise identical on every rank. */
  allReduceMean(data: Float32Array, tag: AllReduceTag, call?: AllReduceCallOptions): Promise<Float32Array> {
    return this.allReduce(data, tag, 'mean', call);
  }

  allReduceSum(data: Float32Array, tag: AllReduceTag, call?: AllReduceCallOptions): Promise<Float32Array> {
    return this.allReduce(data, tag, 'sum', call);
  }

  async allReduce(data: Float32Array, tag: AllReduceTag, op: ReduceOp, call: AllReduceCallOptions = {}): Promise<Float32Array> {
    if (this.closed) throw new Error('RingAllReduce is closed');
    if (!Number.isInteger(tag.step) || tag.step < 0 || tag.step > 0xffffffff) throw new RangeError(`step must be an integer in [0, 2^32), got ${tag.step}`);
    const {rank, worldSize} = this.position;
    if (worldSize === 1 || data.length === 0) return data;
    if (!this.pull || !this.push || !this.outbox) throw new Error('RingAllReduce: call start() and connect() before allReduce');
    if (this.broken) throw new Error(`ring is broken (${this.broken}); call connect() to re-form it`);
    if (this.busy) throw new Error('RingAllReduce: one all-reduce at a time per rank');
    const codec = this.codec(checkCompression(call.compression ?? this.defaultCompression), op === 'mean' ? worldSize : 1, data);
    this.busy = true;
    this.dropLogs = 0;
    try {
      await this.run(data, tag, rank, worldSize, this.pull, this.outbox, codec);
    } catch (err) {
      // Half-way through, the stream positions of this rank and its neighbours no longer agree.
      this.broken ??= (err as Error).message;
      throw err;
    } finally {
      this.busy = false;
      if (this.dropLogs > MAX_DROP_LOGS) this.log(`rank ${rank}: ${this.dropLogs - MAX_DROP_LOGS} more messages dropped in job ${tag.job} step ${tag.step}`);
    }
    // After a complete all-reduce (the ring stays usable): every rank holds the same bits, so every rank fails alike.
    checkFinite(data, codec, rank, tag);
    return data;
  }

  /** How payloads are made and taken apart for one call (a fresh one per call: fp16 counts its overflows). */
  private codec(compression: Compression, divisor: number, data: Float32Array): Codec {
    if (compression === 'fp16') return new HalfCodec(divisor);
    // With 2 ranks reduce-scatter has only step 0 and float64 sums are never made (see ExactCodec).
    if (this.partialBytes === 8 && this.position.worldSize > 2 && this.partialScratch.length < data.length) this.partialScratch = new Float64Array(data.length);
    return new ExactCodec(this.partialBytes, divisor, this.partialScratch, data);
  }

  private async run(data: Float32Array, tag: AllReduceTag, rank: number, worldSize: number, pull: Pull, outbox: Outbox, codec: Codec): Promise<void> {
    const base = {sender: rank, worldSize, jobHash: jobHash(tag.job), step: tag.step};
    const send = (t: Transfer, payload: Buffer): void => {
      this.totals.sentBytes += payload.length;
      outbox.enqueue([encodeHeader({...base, phase: t.phase, ringStep: t.ringStep, chunk: t.chunk.index, offset: t.chunk.offset, count: t.chunk.count}), payload]);
    };
    // Reduce-scatter step 0 sends this rank's own segment.
    for (const chunk of segmentChunks(data.length, worldSize, rank, this.chunkElems)) {
      send({phase: Phase.reduceScatter, ringStep: 0, chunk}, codec.first(data.subarray(chunk.offset, chunk.offset + chunk.count)));
    }
    const expected = receiveSchedule(data.length, worldSize, rank, this.chunkElems);
    const predecessor = mod(rank - 1, worldSize);
    let deadline = performance.now() + this.timeoutMs;
    let lastDrop: string | undefined;
    for (let i = 0; i < expected.length; ) {
      if (this.broken) throw new Error(this.broken);
      const want = expected[i];
      const remaining = Math.ceil(deadline - performance.now());
      let frames: Buffer[] | undefined;
      if (remaining > 0) {
        pull.receiveTimeout = remaining;
        const waitStart = performance.now();
        try {
          frames = await pull.receive();
        } catch (err) {
          // close() also ends a pending receive with EAGAIN: that is not the predecessor's fault.
          if (this.closed) throw new Error('RingAllReduce was closed during an all-reduce');
          if ((err as {code?: string}).code !== 'EAGAIN') throw err;
        } finally {
          this.totals.waitSeconds += (performance.now() - waitStart) / 1000;
        }
      }
      if (!frames) {
        const where = `${phaseName(want.phase)} step ${want.ringStep} chunk ${want.chunk.index}`;
        throw new AllReduceTimeoutError(rank, predecessor, this.predecessorEndpoint, this.timeoutMs, `job ${tag.job} step ${tag.step}, waiting for ${where}, ${i} of ${expected.length} messages received${lastDrop ? `; last dropped: ${lastDrop}` : ''}`);
      }
      const checked = this.check(frames, want, base.jobHash, tag, predecessor, worldSize, codec);
      if (typeof checked === 'string') {
        lastDrop = checked;
        this.drop(`rank ${rank} dropped a message: ${checked}`);
        continue;
      }
      if (checked === HELLO_SEEN) continue;
      this.totals.receivedBytes += checked.length;
      const {offset, count} = want.chunk;
      const own = data.subarray(offset, offset + count);
      const next = nextTransfer(want, worldSize);
      // Every received buffer is ours and never written again once forwarded, so it is forwarded without a copy.
      if (want.phase === Phase.allGather) {
        const forward = codec.gather(checked, own);
        if (next) send(next, forward);
      } else if (next?.phase === Phase.allGather) {
        // This rank now holds the complete sum of this segment: it alone finishes it (so every rank
        // ends with the same bits), keeps it, and starts it round the ring.
        send(next, codec.finish(checked, own));
      } else {
        const forward = codec.accumulate(checked, own);
        if (next) send(next, forward);
      }
      deadline = performance.now() + this.timeoutMs;
      i++;
    }
    await outbox.drained();
    if (this.broken) throw new Error(this.broken);
  }

  /** The payload of the message we expect, HELLO_SEEN, or why the message is dropped. */
  private check(frames: Buffer[], want: Transfer, hash: number, tag: AllReduceTag, predecessor: number, worldSize: number, codec: Codec): Buffer | typeof HELLO_SEEN | string {
    if (frames.length !== 2) return `${frames.length} frames, expected 2 (header, payload)`;
    const h = decodeHeader(frames[0]);
    if (typeof h === 'string') return h;
    if (h.sender !== predecessor || h.worldSize !== worldSize) return `from rank ${h.sender} of ${h.worldSize}, expected predecessor rank ${predecessor} of ${worldSize}`;
    if (h.phase === Phase.hello) {
      this.predecessorEndpoint ??= frames[1].toString('utf8');
      return HELLO_SEEN;
    }
    if (h.jobHash !== hash) return `another job (hash ${h.jobHash.toString(16)}), expected ${tag.job}`;
    if (h.step !== tag.step) return `${h.step < tag.step ? 'stale' : 'future'} step ${h.step}, expected ${tag.step}`;
    if (h.phase !== want.phase || h.ringStep !== want.ringStep || h.chunk !== want.chunk.index || h.offset !== want.chunk.offset || h.count !== want.chunk.count) {
      return `out of sequence: ${describe(h)}, expected ${phaseName(want.phase)} step ${want.ringStep} chunk ${want.chunk.index} [${want.chunk.offset}+${want.chunk.count}] (same length and chunk size on every rank?)`;
    }
    const bytes = want.chunk.count * codec.bytesPerValue(want.phase, want.ringStep);
    if (frames[1].length !== bytes) return `payload ${frames[1].length} bytes, expected ${bytes} for ${want.chunk.count} ${codec.describe(want.phase, want.ringStep)} (same partialSums and compression on every rank?)`;
    return frames[1];
  }

  private drop(line: string): void {
    this.dropped++;
    if (this.dropLogs++ < MAX_DROP_LOGS) this.log(line);
  }

  private closePush(lingerMs?: number): void {
    if (!this.push) return;
    if (lingerMs !== undefined) this.push.linger = lingerMs;
    this.push.close();
    this.push = undefined;
    this.outbox = undefined;
  }

  /**
   * Closes both sockets; idempotent. Queued messages get lingerMs to reach the successor (which may
   * still need this rank's last all-gather chunks), none if the ring is broken or an all-reduce is
   * being abandoned half-way.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closePush(this.broken || this.busy ? 0 : undefined);
    this.pull?.close();
    this.pull = undefined;
    this.zap?.close();
  }
}

/** Starts worldSize ranks in this process on loopback and joins them into one ring (tests, benchmarks, single-machine runs). */
export async function formLocalRing(worldSize: number, options: Omit<RingOptions, 'rank' | 'worldSize' | 'port'> = {}): Promise<RingAllReduce[]> {
  const ranks = Array.from({length: worldSize}, (_, rank) => new RingAllReduce({...options, rank, worldSize}));
  try {
    const peers = await Promise.all(ranks.map((r) => r.start()));
    for (const r of ranks) r.connect(peers);
    return ranks;
  } catch (err) {
    for (const r of ranks) r.close();
    throw err;
  }
}

const HELLO = {phase: Phase.hello, ringStep: 0, jobHash: 0, step: 0, chunk: 0, offset: 0, count: 0} as const;
const HELLO_SEEN = Symbol('hello');

/**
 * Serialises sends on one PUSH socket (ZeroMQ allows one pending send per socket) without ever
 * blocking the receive loop: the loop enqueues, this drains in order, waiting at the high-water mark.
 */
class Outbox {
  private readonly queue: Buffer[][] = [];
  private head = 0;
  private draining = false;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly push: Push,
    private readonly onError: (err: Error) => void,
  ) {}

  enqueue(message: Buffer[]): void {
    this.queue.push(message);
    if (!this.draining) void this.drain();
  }

  /**
   * Resolves once every queued message is in ZeroMQ's hands (its I/O thread sends them from there),
   * or the socket failed. An all-reduce awaits this before it returns: messages left in this queue
   * move only when the event loop turns, and after the call the caller may compute for hundreds of
   * milliseconds while the successor waits for them.
   */
  drained(): Promise<void> {
    if (!this.draining) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.head < this.queue.length) {
        const message = this.queue[this.head];
        this.queue[this.head++] = EMPTY;
        await this.push.send(message);
      }
      this.queue.length = 0;
      this.head = 0;
    } catch (err) {
      // A closed socket (re-formed or closed ring) rejects its pending send; anything else breaks the ring.
      if (!this.push.closed) this.onError(err as Error);
    } finally {
      this.draining = false;
      for (const resolve of this.waiters.splice(0)) resolve();
    }
  }
}
const EMPTY: Buffer[] = [];

function checkPosition({rank, worldSize}: RingPosition): void {
  if (!Number.isInteger(worldSize) || worldSize < 1 || worldSize > 0xffff) throw new RangeError(`worldSize must be an integer in [1, 65535], got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
}

function checkCurvePeers(curve: RingCurveKeys, worldSize: number): void {
  if (curve.peers.length !== worldSize) throw new RangeError(`curve: ${curve.peers.length} public keys for a world of ${worldSize}`);
}

function describe(h: Header): string {
  return `${phaseName(h.phase)} step ${h.ringStep} chunk ${h.chunk} [${h.offset}+${h.count}]`;
}

/**
 * How one all-reduce call turns values into payloads and back, for a result of sum / divisor
 * (divisor N for a mean, 1 for a sum). Every method gets a received payload that is this rank's
 * alone (it may be written, then forwarded) and the caller's elements of the same chunk (`own`).
 */
interface Codec {
  /** Payload bytes per element of a transfer, and what they hold (drop messages). */
  bytesPerValue(phase: Transfer['phase'], ringStep: number): number;
  describe(phase: Transfer['phase'], ringStep: number): string;
  /** Reduce-scatter step 0: this rank's own values. */
  first(own: Float32Array): Buffer;
  /** Reduce-scatter, not the last step: add own into the partial sums; returns what goes on. */
  accumulate(partial: Buffer, own: Float32Array): Buffer;
  /** Reduce-scatter, last step: own becomes the final sum / divisor; returns the all-gather payload, whose values own now equals bit for bit. */
  finish(partial: Buffer, own: Float32Array): Buffer;
  /** All-gather: own becomes the payload's values; returns what goes on. */
  gather(payload: Buffer, own: Float32Array): Buffer;
  /** fp16: how many finite values overflowed half precision on this rank, and how many result values are not finite. */
  readonly overflowed: number;
  readonly nonFinite: number;
}

/**
 * compression 'none': float64 (exact) or float32 partial sums, float32 all-gather. With float64
 * sums, reduce-scatter step 0 still sends float32: a rank's own values are its partial sum there,
 * so the first float64 array is made by the rank that adds the second summand. That saves the copy
 * and half the bytes of step 0 — with 2 ranks, all of reduce-scatter goes as float32 and no float64
 * array is made at all — and the sums are the same bits.
 *
 * Those float64 arrays are views of one scratch array the ring keeps from call to call, at the
 * chunk's own offset (a rank adds into each chunk at most once a call), since a fresh Float64Array
 * cost 3–4 ns an element to allocate. Reuse is safe: a call ends only when every segment has come
 * round complete, which needs every reduce-scatter message of this rank delivered, so ZeroMQ has
 * let go of the previous call's arrays before the next call writes into them.
 */
class ExactCodec implements Codec {
  readonly overflowed = 0;
  readonly nonFinite = 0;

  constructor(
    private readonly partialBytes: 4 | 8,
    private readonly divisor: number,
    private readonly scratch: Float64Array,
    private readonly data: Float32Array,
  ) {}

  bytesPerValue(phase: Transfer['phase'], ringStep: number): number {
    return phase === Phase.reduceScatter && ringStep > 0 ? this.partialBytes : 4;
  }

  describe(phase: Transfer['phase'], ringStep: number): string {
    return this.bytesPerValue(phase, ringStep) === 8 ? 'float64 partial sums' : 'float32 values';
  }

  first(own: Float32Array): Buffer {
    // Straight from the caller's array (no copy): it is only overwritten in all-gather by a value
    // that could not exist before the successor received this.
    return bufferOf(own);
  }

  accumulate(partial: Buffer, own: Float32Array): Buffer {
    if (partial.length === 4 * own.length) {
      const received = typedView(partial, Float32Array);
      if (this.partialBytes === 4) {
        addFloat32(received, own);
        return bufferOf(received);
      }
      const offset = (own.byteOffset - this.data.byteOffset) / 4;
      const sums = this.scratch.subarray(offset, offset + own.length);
      addWidened(sums, received, own);
      return bufferOf(sums);
    }
    const sums = typedView(partial, Float64Array);
    addFloat64(sums, own);
    return bufferOf(sums);
  }

  finish(partial: Buffer, own: Float32Array): Buffer {
    // The last addition and the mean's division happen in float64, rounded once to float32.
    if (partial.length === 4 * own.length) finishFrom(typedView(partial, Float32Array), own, this.divisor);
    else finishFrom(typedView(partial, Float64Array), own, this.divisor);
    return bufferOf(own.slice());
  }

  gather(payload: Buffer, own: Float32Array): Buffer {
    const incoming = typedView(payload, Float32Array);
    own.set(incoming);
    return bufferOf(incoming);
  }
}

/**
 * compression 'fp16': half precision on the wire in both phases. Each rank's values are divided by
 * the divisor before they join a partial sum (a mean's partial sums then stay within the largest
 * input, so they overflow half only where an input does); partial sums are decoded, summed with this
 * rank's share in float32, then re-encoded (never summed in half); the finishing rank rounds the
 * result to half and keeps exactly that value.
 */
class HalfCodec implements Codec {
  overflowed = 0;
  /** Every result value passes through a decode on every rank, which counts the non-finite ones. */
  nonFinite = 0;

  constructor(private readonly divisor: number) {}

  bytesPerValue(): number {
    return 2;
  }

  describe(): string {
    return 'fp16 values';
  }

  first(own: Float32Array): Buffer {
    const h = new Uint16Array(own.length);
    this.overflowed += encodeHalf(own, h, this.divisor);
    return bufferOf(h);
  }

  accumulate(partial: Buffer, own: Float32Array): Buffer {
    const h = typedView(partial, Uint16Array);
    this.overflowed += accumulateHalf(h, own, this.divisor);
    return bufferOf(h);
  }

  finish(partial: Buffer, own: Float32Array): Buffer {
    const h = typedView(partial, Uint16Array);
    this.overflowed += accumulateHalf(h, own, this.divisor);
    // Keep what the others will decode, not a float32 mean: every rank ends with the same bits.
    this.nonFinite += decodeHalf(h, own);
    return bufferOf(h);
  }

  gather(payload: Buffer, own: Float32Array): Buffer {
    const h = typedView(payload, Uint16Array);
    this.nonFinite += decodeHalf(h, own);
    return bufferOf(h);
  }
}

/** fp16 results: fail the call where a value is not finite (every rank holds the same bits, so every rank fails alike). */
function checkFinite(data: Float32Array, codec: Codec, rank: number, tag: AllReduceTag): void {
  if (codec.nonFinite === 0) return;
  const first = data.findIndex((x) => !Number.isFinite(x));
  throw new NonFiniteAllReduceError(rank, codec.nonFinite, first, data[first], codec.overflowed, tag);
}

function checkCompression(c: string): Compression {
  if (!(COMPRESSIONS as readonly string[]).includes(c)) throw new RangeError(`compression must be one of ${COMPRESSIONS.join(', ')}, got ${c}`);
  return c as Compression;
}

/** A typed view of the payload; copied only when ZeroMQ handed us bytes at an unaligned address. */
function typedView<T extends Float32Array | Float64Array | Uint16Array>(b: Buffer, Type: {new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; new (length: number): T; BYTES_PER_ELEMENT: number}): T {
  const n = b.length / Type.BYTES_PER_ELEMENT;
  if (b.byteOffset % Type.BYTES_PER_ELEMENT === 0) return new Type(b.buffer, b.byteOffset, n);
  const copy = new Type(n);
  new Uint8Array(copy.buffer).set(b);
  return copy;
}

function bufferOf(a: Float32Array | Float64Array | Uint16Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/*
 * The sums below, one function per array type so that each stays monomorphic in V8 (closures of one
 * factory share their type feedback): measured on 128 Ki elements, a loop shared by Float32Array
 * and Float64Array took 2.2–2.4 ns an element, a Float64Array-only one 1.5–1.8, unrolled by 4 1.0.
 */

/** acc += x elementwise (float32 partial sums: a benchmark setting, so not unrolled). */
function addFloat32(acc: Float32Array, x: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] += x[i];
}

/** acc += x elementwise in float64 (the sum of float32 values is then exact but for extreme exponent spreads). */
function addFloat64(acc: Float64Array, x: Float32Array): void {
  const n = acc.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    acc[i] += x[i];
    acc[i + 1] += x[i + 1];
    acc[i + 2] += x[i + 2];
    acc[i + 3] += x[i + 3];
  }
  for (; i < n; i++) acc[i] += x[i];
}

/** out = a + b as float64 partial sums (exact: two float32 summands). */
function addWidened(out: Float64Array, a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}

/** own = (sums + own) / divisor, computed in float64 and rounded once. */
function finishFrom(sums: Float32Array | Float64Array, own: Float32Array, divisor: number): void {
  for (let k = 0; k < own.length; k++) own[k] = (sums[k] + own[k]) / divisor;
}
