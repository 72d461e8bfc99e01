/** Image sources and decoding for predict: formats, channels, the training normalisation, files and URLs that fail. */
import assert from 'node:assert/strict';
import {promises as fs} from 'node:fs';
import path from 'node:path';
import {after, before, test} from 'node:test';

import sharp from 'sharp';

import {UserError} from '../../src/cli/errors.js';
import {IMAGE_BYTES, makeBatch} from '../../src/data/index.js';
import {datasetImageHwc, decodeImage, imagesToDataset, loadImage} from '../../src/predict/images.js';
import {serve, tempDir, type TestServer} from '../data/helpers.js';

const RED = {r: 200, g: 10, b: 30};
const solid = (channels: 3 | 4, width = 50, height = 40) =>
  sharp({create: {width, height, channels, background: channels === 4 ? {...RED, alpha: 1} : RED}});

let dir: string;
const servers: TestServer[] = [];

before(async () => {
  dir = await tempDir('dtrain-images-');
});

after(async () => {
  for (const s of servers) await s.close();
  await fs.rm(dir, {recursive: true, force: true});
});

/** Mean of each channel over a decoded 32×32×3 image. */
function channelMeans(hwc: Uint8Array): number[] {
  const sums = [0, 0, 0];
  for (let i = 0; i < hwc.length; i++) sums[i % 3] += hwc[i];
  return sums.map((s) => s / (hwc.length / 3));
}

test('JPEG, PNG (RGBA, 16-bit), WebP, grey and CMYK all become 32×32 RGB', async () => {
  const cases: Array<[string, Buffer, number[], number]> = [
    ['png', await solid(3).png().toBuffer(), [200, 10, 30], 1],
    ['png with alpha', await solid(4).png().toBuffer(), [200, 10, 30], 1],
    ['16-bit png', await solid(3).toColourspace('rgb16').png().toBuffer(), [200, 10, 30], 2],
    ['jpeg', await solid(3).jpeg({quality: 95}).toBuffer(), [200, 10, 30], 6],
    ['webp', await solid(3).webp({lossless: true}).toBuffer(), [200, 10, 30], 1],
    ['grey png (1 channel)', await solid(3).greyscale().toColourspace('b-w').png().toBuffer(), [99, 99, 99], 2],
    ['cmyk jpeg', await solid(3).jpeg({quality: 95}).toColourspace('cmyk').toBuffer(), [200, 10, 30], 8],
    ['large, wide png', await solid(3, 640, 200).png().toBuffer(), [200, 10, 30], 1],
  ];
  for (const [name, bytes, want, tolerance] of cases) {
    const hwc = await decodeImage(bytes, name);
    assert.equal(hwc.length, IMAGE_BYTES, name);
    channelMeans(hwc).forEach((m, ch) => assert.ok(Math.abs(m - want[ch]) <= tolerance, `${name}: channel ${ch} mean ${m}, want ${want[ch]}`));
  }
});

test('decoded images take the training normalisation: (x/255 − 0.5)/0.5, NHWC RGB', async () => {
  const hwc = await decodeImage(await solid(3).png().toBuffer(), 'red.png');
  const ds = imagesToDataset([hwc]);
  assert.deepEqual(datasetImageHwc(ds, 0), hwc, 'HWC → CHW → HWC round trip');
  const {x} = makeBatch(ds, [0], {augment: false});
  const expected = [200, 10, 30].map((v) => Math.fround(Math.fround(Math.fround(v / 255) - 0.5) / 0.5));
  assert.deepEqual(Array.from(x.subarray(0, 3)), expected);
  assert.deepEqual(Array.from(x.subarray(x.length - 3)), expected);
});

test('a non-image, an SVG and a truncated JPEG are refused with the input named', async () => {
  const jpeg = await solid(3).jpeg().toBuffer();
  const bad: Array<[string, Buffer, RegExp]> = [
    ['notes.txt', Buffer.from('just some text'), /^notes\.txt: not an image/],
    ['drawing.svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'), /^drawing\.svg: svg images are not accepted/],
    ['cut.jpg', jpeg.subarray(0, 200), /^cut\.jpg: /],
  ];
  for (const [name, bytes, message] of bad) {
    await assert.rejects(decodeImage(bytes, name), (e: unknown) => e instanceof UserError && e.exitCode === 5 && message.test(e.message));
  }
});

test('files and URLs: served image loads; missing file, directory, 404 and timeout fail with one clear message', async () => {
  const png = await solid(3).png().toBuffer();
  const file = path.join(dir, 'red.png');
  await fs.writeFile(file, png);
  const good = await serve(png);
  const notFound = await serve(Buffer.alloc(0), {notFound: true});
  const silent = await serve(Buffer.alloc(0), {stall: true});
  servers.push(good, notFound, silent);
  const options = {timeoutMs: 500};
  assert.deepEqual(await loadImage(good.url('/red.png'), options), await loadImage(file, options));
  const failures: Array<[string, number, RegExp]> = [
    [path.join(dir, 'absent.png'), 5, /absent\.png: no such file$/],
    [dir, 5, /: is a directory$/],
    [notFound.url('/x.png'), 4, /x\.png: server answered HTTP 404/],
    [silent.url('/slow.png'), 4, /slow\.png: no response from .* within 1 s$/],
    ['ftp://example.com/a.png', 4, /unsupported URL scheme/],
  ];
  for (const [input, exitCode, message] of failures) {
    await assert.rejects(loadImage(input, options), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.equal(e.exitCode, exitCode, e.message);
      assert.match(e.message, message);
      return true;
    });
  }
});
