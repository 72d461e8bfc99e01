/**
 * The binary header that tags every ring message (frame 1 of 2; frame 2 is the float32 payload).
 * Fixed 32 bytes, little-endian, so that a receiver can reject anything that is not the exact
 * message it expects next without looking at the payload:
 *
 *   0  4 magic "DTAR"          12 u32 job hash (FNV-1a 32 of the UTF-8 job id)
 *   4  u8 version (1)          16 u32 training step
 *   5  u8 phase                20 u32 chunk index within the segment
 *   6  u16 sender rank         24 u32 element offset in the flat buffer
 *   8  u16 world size          28 u32 element count (payload bytes / 4)
 *   10 u16 ring step
 */
export const HEADER_BYTES = 32;
export const HEADER_VERSION = 1;
const MAGIC = 0x52415444; // "DTAR" read as a little-endian u32

export const Phase = {reduceScatter: 0, allGather: 1, hello: 2} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];
const PHASE_NAMES = ['reduce-scatter', 'all-gather', 'hello'] as const;

export function phaseName(phase: number): string {
  return PHASE_NAMES[phase] ?? `phase ${phase}`;
}

export interface Header {
  phase: Phase;
  sender: number;
  worldSize: number;
  ringStep: number;
  jobHash: number;
  step: number;
  chunk: number;
  offset: number;
  count: number;
}

/** FNV-1a 32-bit: a job id of any length fits the fixed header; a collision only weakens a sanity check. */
export function jobHash(job: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(job, 'utf8')) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

export function encodeHeader(h: Header): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt8(HEADER_VERSION, 4);
  b.writeUInt8(h.phase, 5);
  b.writeUInt16LE(h.sender, 6);
  b.writeUInt16LE(h.worldSize, 8);
  b.writeUInt16LE(h.ringStep, 10);
  b.writeUInt32LE(h.jobHash, 12);
  b.writeUInt32LE(h.step, 16);
  b.writeUInt32LE(h.chunk, 20);
  b.writeUInt32LE(h.offset, 24);
  b.writeUInt32LE(h.count, 28);
  return b;
}

/** The header, or a reason why these bytes are not one (never throws: input comes off the wire). */
export function decodeHeader(b: Buffer): Header | string {
  if (b.length !== HEADER_BYTES) return `header is ${b.length} bytes, expected ${HEADER_BYTES}`;
  if (b.readUInt32LE(0) !== MAGIC) return 'bad magic';
  const version = b.readUInt8(4);
  if (version !== HEADER_VERSION) return `header version ${version}, expected ${HEADER_VERSION}`;
  const phase = b.readUInt8(5);
  if (phase > Phase.hello) return `unknown phase ${phase}`;
  return {
    phase: phase as Phase,
    sender: b.readUInt16LE(6),
    worldSize: b.readUInt16LE(8),
    ringStep: b.readUInt16LE(10),
    jobHash: b.readUInt32LE(12),
    step: b.readUInt32LE(16),
    chunk: b.readUInt32LE(20),
    offset: b.readUInt32LE(24),
    count: b.readUInt32LE(28),
  };
}
