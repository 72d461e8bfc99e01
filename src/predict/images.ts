/**
 * Images from outside the dataset: a file path or an http(s) URL → the 32×32 RGB bytes the model
 * takes. Decoding is sharp's (libvips). Every failure is a UserError naming the input, so a caller
 * can report it in one line and go on with the other inputs.
 */
import {mkdtemp, readFile, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import sharp from 'sharp';

import {ExitCode, UserError} from '../cli/errors.js';
import {CIFAR10_CLASSES, type Dataset, downloadFile, IMAGE_BYTES, IMAGE_SIZE, NetworkError} from '../data/index.js';

/** Formats accepted (sharp reads more, e.g. SVG and PDF, which are not photos). */
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff'] as const;

export interface ImageSourceOptions {
  /** A URL that sends nothing for this long fails (connecting, or mid-transfer). */
  timeoutMs: number;
}

const PLANE = IMAGE_SIZE * IMAGE_SIZE;

export function isUrl(input: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(input);
}

/** The bytes behind `input`: a URL through the data module's downloader (redirects, timeouts), else a file. */
async function readSource(input: string, options: ImageSourceOptions): Promise<Buffer> {
  if (!isUrl(input)) {
    try {
      return await readFile(input);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : (code ?? (error as Error).message);
      throw new UserError(`${input}: ${why}`, {exitCode: ExitCode.data, cause: error});
    }
  }
  // The downloader writes a file (it is built for big resumable transfers); a private temp dir holds it.
  const dir = await mkdtemp(join(tmpdir(), 'dtrain-predict-'));
  try {
    const {file} = await downloadFile(input, join(dir, 'image'), {timeoutMs: options.timeoutMs, retries: 0});
    return await readFile(file);
  } catch (error) {
    if (error instanceof NetworkError) {
      // HTTP statuses and timeouts already read well; socket errors ("connect ECONNREFUSED …") get a plain-words lead.
      const why = ['dns', 'refused', 'unreachable'].includes(error.kind) ? `cannot connect (${error.message})` : error.message;
      throw new UserError(`${input}: ${why}`, {exitCode: ExitCode.network, cause: error});
    }
    throw error;
  } finally {
    await rm(dir, {recursive: true, force: true});
  }
}

/**
 * Encoded image → 32×32×3 bytes, row-major RGB (HWC): EXIF orientation applied, alpha dropped, grey
 * or CMYK converted to sRGB, 8 bits, then the whole image stretched to 32×32 (aspect ratio not kept,
 * like torchvision's Resize((32, 32))) with a bilinear kernel that averages the whole footprint
 * when shrinking, as PIL's antialiased bilinear does.
 */
export async function decodeImage(bytes: Buffer, input: string): Promise<Uint8Array> {
  const notImage = (why: string, cause?: unknown) =>
    new UserError(`${input}: ${why}`, {exitCode: ExitCode.data, suggestion: `pass a ${IMAGE_FORMATS.join(', ')} image`, cause});
  let format: string | undefined;
  try {
    format = (await sharp(bytes).metadata()).format;
  } catch (error) {
    throw notImage(`not an image (${(error as Error).message})`, error);
  }
  if (!(IMAGE_FORMATS as readonly string[]).includes(format ?? '')) throw notImage(`${format ?? 'unknown'} images are not accepted`);
  try {
    const {data} = await sharp(bytes)
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .resize(IMAGE_SIZE, IMAGE_SIZE, {fit: 'fill', kernel: 'linear'})
      .raw({depth: 'uchar'})
      .toBuffer({resolveWithObject: true});
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (error) {
    throw notImage(`cannot decode the ${format} image (${(error as Error).message})`, error);
  }
}

/** Path or URL → 32×32×3 RGB bytes (HWC). */
export async function loadImage(input: string, options: ImageSourceOptions): Promise<Uint8Array> {
  return decodeImage(await readSource(input, options), input);
}

/**
 * HWC images → a Dataset (CHW planes, as CIFAR-10 stores them), so that they go through exactly the
 * transform the test set goes through. Labels are 0: unknown.
 */
export function imagesToDataset(images: Uint8Array[], name = 'images'): Dataset {
  const out = new Uint8Array(images.length * IMAGE_BYTES);
  images.forEach((hwc, k) => {
    const base = k * IMAGE_BYTES;
    for (let p = 0; p < PLANE; p++) for (let ch = 0; ch < 3; ch++) out[base + ch * PLANE + p] = hwc[p * 3 + ch];
  });
  return {name, count: images.length, images: out, labels: new Uint8Array(images.length), classNames: CIFAR10_CLASSES};
}

/** Dataset image (CHW planes) → HWC RGB bytes, e.g. to draw it. */
export function datasetImageHwc(ds: Dataset, index: number): Uint8Array {
  const base = index * IMAGE_BYTES;
  const out = new Uint8Array(IMAGE_BYTES);
  for (let p = 0; p < PLANE; p++) for (let ch = 0; ch < 3; ch++) out[p * 3 + ch] = ds.images[base + ch * PLANE + p];
  return out;
}
