import {readFile} from 'node:fs/promises';

import {ExitCode, UserError} from '../cli/errors.js';

/**
 * safetensors (https://github.com/huggingface/safetensors): 8-byte little-endian header length,
 * JSON header {name: {dtype, shape, data_offsets}, __metadata__}, then raw little-endian data.
 * The npm packages for it are unmaintained stubs, so this is a small, tested module.
 */
export type SafeDtype = 'F32' | 'F64' | 'I64' | 'I32' | 'U8';
export type SafeData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface SafeTensor {
  dtype: SafeDtype;
  shape: number[];
  data: SafeData;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

const ARRAY_OF: Record<SafeDtype, {bytes: number; make: (buf: ArrayBuffer) => SafeData}> = {
  F32: {bytes: 4, make: (b) => new Float32Array(b)},
  F64: {bytes: 8, make: (b) => new Float64Array(b)},
  I64: {bytes: 8, make: (b) => new BigInt64Array(b)},
  I32: {bytes: 4, make: (b) => new Int32Array(b)},
  U8: {bytes: 1, make: (b) => new Uint8Array(b)},
};

function dtypeOf(data: SafeData): SafeDtype {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Int32Array) return 'I32';
  return 'U8';
}

export function parseSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  const bad = (why: string) =>
    new UserError(`${source} is not a valid safetensors file: ${why}`, {exitCode: ExitCode.data, suggestion: 'check the path, or re-create the file'});
  if (bytes.length < 8) throw bad('shorter than its 8-byte header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) throw bad(`header length ${headerLength} exceeds the file (${bytes.length} bytes); truncated?`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  } catch (error) {
    throw bad(`header is not JSON (${(error as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const {dtype, shape, data_offsets: offsets} = entry as {dtype: SafeDtype; shape: number[]; data_offsets: [number, number]};
    const kind = ARRAY_OF[dtype];
    if (!kind) throw bad(`tensor ${name} has unsupported dtype ${dtype}`);
    const [begin, end] = offsets;
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * kind.bytes) throw bad(`tensor ${name}: ${end - begin} bytes for shape [${shape}] ${dtype}`);
    if (dataStart + end > bytes.length) throw bad(`tensor ${name} runs past the end of the file; truncated?`);
    // Copy (Buffer.slice would be a view) so the typed array is aligned whatever the header length.
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, {dtype, shape, data: kind.make(copy.buffer)});
  }
  return {tensors, metadata};
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      exitCode: ExitCode.data,
      suggestion: 'check the path',
    });
  }
  return parseSafetensors(bytes, path);
}

/** Serialise tensors (in the given order) and string metadata. */
export function serializeSafetensors(tensors: Map<string, {shape: number[]; data: SafeData}>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${name}: shape [${t.shape}] does not match ${t.data.length} values`);
    header[name] = {dtype: dtypeOf(t.data), shape: t.shape, data_offsets: [offset, offset + t.data.byteLength]};
    offset += t.data.byteLength;
  }
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data section starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, pos);
    pos += t.data.byteLength;
  }
  return out;
}
