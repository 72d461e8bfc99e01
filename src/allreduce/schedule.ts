/**
 * Which piece of the flat buffer travels in which message. Pure arithmetic, identical on every rank,
 * so both ends of a link agree on the message stream without negotiating it.
 *
 * The buffer is cut into worldSize segments (balanced: sizes differ by at most one element, empty
 * when length < worldSize), each segment into chunks of at most chunkElems elements. Rank r sends
 * to r+1 and receives from r−1:
 * - reduce-scatter step s: r sends segment r−s, receives segment r−s−1 and adds its own values;
 *   after N−1 steps r holds the complete sum of segment r+1.
 * - all-gather step s: r sends segment r+1−s, receives segment r−s and stores it.
 * The segment r receives at any step is the one it sends at the next step, chunk for chunk, so a
 * received chunk can be forwarded at once: the ring is one pipelined stream, not N−1 barriers.
 */
import {Phase} from './header.js';

export interface Chunk {
  /** Index of the chunk within its segment. */
  index: number;
  /** First element in the flat buffer. */
  offset: number;
  count: number;
}

export interface Transfer {
  phase: typeof Phase.reduceScatter | typeof Phase.allGather;
  ringStep: number;
  chunk: Chunk;
}

export function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

export function segmentChunks(length: number, worldSize: number, segment: number, chunkElems: number): Chunk[] {
  const start = Math.floor((segment * length) / worldSize);
  const end = Math.floor(((segment + 1) * length) / worldSize);
  const chunks: Chunk[] = [];
  for (let offset = start, index = 0; offset < end; offset += chunkElems, index++) chunks.push({index, offset, count: Math.min(chunkElems, end - offset)});
  return chunks;
}

/** Every message rank `rank` receives during one all-reduce, in the order its predecessor sends them. */
export function receiveSchedule(length: number, worldSize: number, rank: number, chunkElems: number): Transfer[] {
  const out: Transfer[] = [];
  for (const phase of [Phase.reduceScatter, Phase.allGather] as const) {
    for (let ringStep = 0; ringStep < worldSize - 1; ringStep++) {
      const segment = mod(phase === Phase.reduceScatter ? rank - ringStep - 1 : rank - ringStep, worldSize);
      for (const chunk of segmentChunks(length, worldSize, segment, chunkElems)) out.push({phase, ringStep, chunk});
    }
  }
  return out;
}

/** What a received transfer turns into on the way out: the same chunk one ring step later, or nothing at the very end. */
export function nextTransfer(t: Transfer, worldSize: number): Transfer | undefined {
  if (t.ringStep < worldSize - 2) return {...t, ringStep: t.ringStep + 1};
  return t.phase === Phase.reduceScatter ? {phase: Phase.allGather, ringStep: 0, chunk: t.chunk} : undefined;
}
