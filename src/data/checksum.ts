/** File digests: md5 is what CIFAR-10's site publishes; sha256 names dataset contents. */
import {createHash} from 'node:crypto';
import {createReadStream} from 'node:fs';

import type {Dataset} from './cifar10.js';

export async function md5File(file: string): Promise<string> {
  const hash = createHash('md5');
  // Streamed: the official tarball is 163 MB and need not sit in memory.
  for await (const chunk of createReadStream(file, {highWaterMark: 1 << 20})) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A content hash of a dataset (labels, then images): equal hashes mean equal data, whatever the source. */
export function datasetDigest(ds: Dataset): string {
  return createHash('sha256').update(ds.labels).update(ds.images).digest('hex');
}

export function isMd5(hex: string): boolean {
  return /^[0-9a-f]{32}$/i.test(hex);
}
