import {createHash} from 'node:crypto';

import {CIFAR10_CLASSES, type Dataset, IMAGE_BYTES} from '../data/index.js';

/**
 * A job's train and test sets as one blob, served by the coordinator (FetchDataset) and cached by
 * workers under its sha256: "DTDS", u32 version 1, u32 train count, u32 test count, then train
 * labels, train images, test labels, test images (CIFAR-10 layouts).
 */
const MAGIC = 0x53445444; // "DTDS" little-endian
const HEADER = 16;

export function encodeDatasetBlob(train: Dataset, test: Dataset): {blob: Buffer; hash: string} {
  const blob = Buffer.allocUnsafe(HEADER + (train.count + test.count) * (1 + IMAGE_BYTES));
  blob.writeUInt32LE(MAGIC, 0);
  blob.writeUInt32LE(1, 4);
  blob.writeUInt32LE(train.count, 8);
  blob.writeUInt32LE(test.count, 12);
  let o = HEADER;
  for (const ds of [train, test]) {
    blob.set(ds.labels.subarray(0, ds.count), o);
    o += ds.count;
    blob.set(ds.images.subarray(0, ds.count * IMAGE_BYTES), o);
    o += ds.count * IMAGE_BYTES;
  }
  return {blob, hash: blobHash(blob)};
}

export function blobHash(blob: Uint8Array): string {
  return createHash('sha256').update(blob).digest('hex');
}

export function decodeDatasetBlob(blob: Uint8Array): {train: Dataset; test: Dataset} {
  const view = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (view.length < HEADER || view.readUInt32LE(0) !== MAGIC || view.readUInt32LE(4) !== 1) throw new Error('not a dtrain dataset blob (bad magic or version)');
  const counts = [view.readUInt32LE(8), view.readUInt32LE(12)];
  if (view.length !== HEADER + (counts[0] + counts[1]) * (1 + IMAGE_BYTES)) throw new Error(`dataset blob has ${view.length} bytes, expected ${HEADER + (counts[0] + counts[1]) * (1 + IMAGE_BYTES)}`);
  let o = HEADER;
  const [train, test] = (['train', 'test'] as const).map((name, k) => {
    const count = counts[k];
    const labels = new Uint8Array(view.subarray(o, o + count));
    o += count;
    const images = new Uint8Array(view.subarray(o, o + count * IMAGE_BYTES));
    o += count * IMAGE_BYTES;
    return {name, count, labels, images, classNames: CIFAR10_CLASSES} satisfies Dataset;
  });
  return {train, test};
}
