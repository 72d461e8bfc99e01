/**
 * The CIFAR-10 binary format (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"):
 * files of 3,073-byte records, 1 label byte then 1024 R, 1024 G, 1024 B bytes (row-major 32×32).
 * Reading, writing and validating that format lives here and nowhere else.
 */
import {promises as fs} from 'node:fs';
import path from 'node:path';

import {ExitCode, UserError} from '../cli/errors.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;
export const IMAGE_SIZE = 32;
export const CHANNELS = 3;
/** Bytes of one image (CHW planes). */
export const IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * CHANNELS;
/** Bytes of one record: label + image. */
export const RECORD_BYTES = 1 + IMAGE_BYTES;
/** The folder the official tarball unpacks to; dtrain keeps the same layout on disk. */
export const CIFAR10_SUBDIR = 'cifar-10-batches-bin';
export const TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'] as const;
export const TEST_FILES = ['test_batch.bin'] as const;
export const META_FILE = 'batches.meta.txt';

export type Split = 'train' | 'test';

/** A split held in memory in the official record order (images as CHW planes, like the files). */
export interface Dataset {
  name: string;
  count: number;
  /** count × 3072 bytes: per image 1024 R, 1024 G, 1024 B, each row-major 32×32. */
  images: Uint8Array;
  labels: Uint8Array;
  classNames: readonly string[];
}

export function splitFiles(split: Split): readonly string[] {
  return split === 'train' ? TRAIN_FILES : TEST_FILES;
}

const fetchHint = 'run `dtrain data download` to fetch CIFAR-10 again, or train offline with `--data synthetic`';

/**
 * Where the batch files are: `dir/cifar-10-batches-bin/` (the layout `download` and `synth` write),
 * or `dir` itself when it already is that folder. Returns undefined when neither holds data_batch_1.bin.
 */
export async function findCifar10Dir(dir: string): Promise<string | undefined> {
  for (const candidate of [path.join(dir, CIFAR10_SUBDIR), dir]) {
    if (await isFile(path.join(candidate, TRAIN_FILES[0]))) return candidate;
  }
  return undefined;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

async function requireBatchesDir(dir: string): Promise<string> {
  const found = await findCifar10Dir(dir);
  if (!found) {
    throw new UserError(`No CIFAR-10 dataset in ${dir} (expected ${path.join(dir, CIFAR10_SUBDIR, TRAIN_FILES[0])} and the other batch files)`, {
      exitCode: ExitCode.data,
      suggestion: `Run \`dtrain data download --dir ${dir}\`, or train offline with \`--data synthetic\``,
    });
  }
  return found;
}

/** Size of a batch file in records; a missing file or a partial record is a UserError naming the file. */
async function recordCount(file: string): Promise<number> {
  let size: number;
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) throw Object.assign(new Error('not a file'), {code: 'ENOTFILE'});
    size = st.size;
  } catch (error) {
    throw new UserError(`CIFAR-10 file missing: ${file}`, {exitCode: ExitCode.data, suggestion: `The dataset is incomplete; ${fetchHint}`, cause: error});
  }
  if (size % RECORD_BYTES !== 0) {
    throw new UserError(
      `CIFAR-10 file ${file} is ${size} bytes, not a whole number of ${RECORD_BYTES}-byte records (truncated, or not the CIFAR-10 binary version)`,
      {exitCode: ExitCode.data, suggestion: `Delete ${path.dirname(file)} and ${fetchHint}`},
    );
  }
  return size / RECORD_BYTES;
}

/** Class names from batches.meta.txt when it lists exactly 10, else the official ones. */
async function readClassNames(batchesDir: string): Promise<readonly string[]> {
  try {
    const names = (await fs.readFile(path.join(batchesDir, META_FILE), 'utf8'))
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    if (names.length === CIFAR10_CLASSES.length) return names;
  } catch {
    // The meta file only names the classes; without it the official names are right.
  }
  return CIFAR10_CLASSES;
}

/**
 * Splits record bytes into images and labels, checking each label. `into` lets a caller fill one
 * big buffer from several files without copying twice.
 */
export function decodeRecords(
  bytes: Uint8Array,
  source: string,
  into?: {images: Uint8Array; labels: Uint8Array; offset: number},
): {images: Uint8Array; labels: Uint8Array; count: number} {
  if (bytes.length % RECORD_BYTES !== 0) {
    throw new UserError(`${source}: ${bytes.length} bytes is not a whole number of ${RECORD_BYTES}-byte records`, {exitCode: ExitCode.data});
  }
  const count = bytes.length / RECORD_BYTES;
  const images = into?.images ?? new Uint8Array(count * IMAGE_BYTES);
  const labels = into?.labels ?? new Uint8Array(count);
  const offset = into?.offset ?? 0;
  for (let r = 0; r < count; r++) {
    const at = r * RECORD_BYTES;
    const label = bytes[at];
    if (label > 9) {
      throw new UserError(`CIFAR-10 file ${source}: record ${r} has label ${label} (labels are 0-9); the file is corrupt or not CIFAR-10`, {
        exitCode: ExitCode.data,
        suggestion: `Delete it and ${fetchHint}`,
      });
    }
    labels[offset + r] = label;
    images.set(bytes.subarray(at + 1, at + RECORD_BYTES), (offset + r) * IMAGE_BYTES);
  }
  return {images, labels, count};
}

/** The records of a dataset in the official binary layout (what the files hold; also a wire format). */
export function encodeRecords(ds: Dataset, start = 0, end = ds.count): Uint8Array {
  const n = end - start;
  const out = new Uint8Array(n * RECORD_BYTES);
  for (let r = 0; r < n; r++) {
    out[r * RECORD_BYTES] = ds.labels[start + r];
    out.set(ds.images.subarray((start + r) * IMAGE_BYTES, (start + r + 1) * IMAGE_BYTES), r * RECORD_BYTES + 1);
  }
  return out;
}

/**
 * Loads one split. `dir` is the data dir (holding cifar-10-batches-bin/) or that folder itself;
 * `limit` keeps the first N images in file order (only the files needed are read, all are checked).
 */
export async function loadCifar10(dir: string, split: Split, limit?: number): Promise<Dataset> {
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new UserError(`Image limit must be a positive integer, got ${limit}`, {exitCode: ExitCode.usage});
  }
  const batchesDir = await requireBatchesDir(dir);
  const files = splitFiles(split).map((f) => path.join(batchesDir, f));
  // Sizes first, so a broken file is reported even when the limit would not reach it.
  const counts: number[] = [];
  for (const f of files) counts.push(await recordCount(f));
  const available = counts.reduce((a, b) => a + b, 0);
  const count = Math.min(available, limit ?? Number.POSITIVE_INFINITY);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let offset = 0;
  for (let i = 0; i < files.length && offset < count; i++) {
    const take = Math.min(counts[i], count - offset);
    const bytes = await readPrefix(files[i], take * RECORD_BYTES);
    if (bytes.length !== take * RECORD_BYTES) {
      throw new UserError(`CIFAR-10 file ${files[i]} changed while being read`, {exitCode: ExitCode.data, suggestion: 'Run the command again'});
    }
    decodeRecords(bytes, files[i], {images, labels, offset});
    offset += take;
  }
  return {name: `cifar10/${split}`, count, images, labels, classNames: await readClassNames(batchesDir)};
}

async function readPrefix(file: string, bytes: number): Promise<Uint8Array> {
  const handle = await fs.open(file, 'r');
  try {
    const buf = new Uint8Array(bytes);
    let done = 0;
    while (done < bytes) {
      const {bytesRead} = await handle.read(buf, done, bytes - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === bytes ? buf : buf.subarray(0, done);
  } finally {
    await handle.close();
  }
}

export interface Cifar10FileInfo {
  split: Split;
  file: string;
  bytes: number;
  records: number;
}

/** Checks every batch file (presence, whole records, labels 0-9) without keeping the images. */
export async function validateCifar10Dir(dir: string): Promise<{batchesDir: string; files: Cifar10FileInfo[]}> {
  const batchesDir = await requireBatchesDir(dir);
  const files: Cifar10FileInfo[] = [];
  for (const split of ['train', 'test'] as const) {
    for (const name of splitFiles(split)) {
      const file = path.join(batchesDir, name);
      const records = await recordCount(file);
      const bytes = await fs.readFile(file);
      for (let r = 0; r < records; r++) {
        const label = bytes[r * RECORD_BYTES];
        if (label > 9) {
          throw new UserError(`CIFAR-10 file ${file}: record ${r} has label ${label} (labels are 0-9); the file is corrupt or not CIFAR-10`, {
            exitCode: ExitCode.data,
            suggestion: `Delete it and ${fetchHint}`,
          });
        }
      }
      files.push({split, file, bytes: bytes.length, records});
    }
  }
  return {batchesDir, files};
}

/**
 * Writes train and test in the official layout under `dir/cifar-10-batches-bin/`: train spread over
 * the five data_batch files (whole records, as even as possible), test in test_batch.bin, class names
 * in batches.meta.txt. Files are written under a temporary name and renamed, so readers never see
 * half a file.
 */
export async function writeCifar10Dir(dir: string, train: Dataset, test: Dataset): Promise<string[]> {
  const batchesDir = path.join(dir, CIFAR10_SUBDIR);
  await fs.mkdir(batchesDir, {recursive: true});
  const written: string[] = [];
  const put = async (name: string, data: Uint8Array | string): Promise<void> => {
    const file = path.join(batchesDir, name);
    const tmp = `${file}.tmp-${process.pid}`;
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
    written.push(file);
  };
  const parts = TRAIN_FILES.length;
  for (let i = 0; i < parts; i++) {
    const start = Math.floor((train.count * i) / parts);
    const end = Math.floor((train.count * (i + 1)) / parts);
    await put(TRAIN_FILES[i], encodeRecords(train, start, end));
  }
  await put(TEST_FILES[0], encodeRecords(test));
  await put(META_FILE, train.classNames.join('\n') + '\n\n');
  return written;
}

/** Images per class, indexed by label. */
export function classCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.classNames.length).fill(0);
  for (let i = 0; i < ds.count; i++) counts[ds.labels[i]]++;
  return counts;
}

/** The first `n` images of a dataset (views, no copy). */
export function takeFirst(ds: Dataset, n: number): Dataset {
  if (n >= ds.count) return ds;
  return {...ds, count: n, images: ds.images.subarray(0, n * IMAGE_BYTES), labels: ds.labels.subarray(0, n)};
}
