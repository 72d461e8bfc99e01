/**
 * The seed's figure of sample predictions: test images in an 8-column grid, each upscaled (nearest
 * neighbour, so the 32×32 pixels stay honest) in a frame and with "pred" and "true" labels below,
 * green when the prediction is right and red when it is wrong. Images are blitted into a raw RGB
 * canvas; frames and labels are one SVG composited over it by sharp.
 */
import sharp from 'sharp';

import {CIFAR10_CLASSES, type Dataset, type DataSource, IMAGE_SIZE, resolveDataset} from '../data/index.js';
import type {ShuffleNetV2} from '../model/shufflenetv2.js';
import {svgDocument, svgText, writeImage} from '../plot/svg.js';
import {Random} from '../util/random.js';
import {classProbabilities, topClass} from './classify.js';
import {datasetImageHwc} from './images.js';

export const GRID_IMAGES = 64;
export const GRID_COLUMNS = 8;
export const RIGHT_COLOUR = '#1b8a2f';
export const WRONG_COLOUR = '#d32f2f';

const SCALE = 4;
const TILE = IMAGE_SIZE * SCALE;
const FRAME = 4;
const MARGIN = 20;
const GAP = 18;
const LABELS = 40;
const HEADER = 44;

export interface GridTile {
  /** Index in the test set. */
  index: number;
  predicted: string;
  truth: string;
  correct: boolean;
  /** Probability of the predicted class. */
  confidence: number;
}

export interface GridLayout {
  width: number;
  height: number;
  /** Top-left corner of tile k's image (its frame lies FRAME pixels outside). */
  tile(k: number): {left: number; top: number; size: number; frame: number};
}

export function gridLayout(count: number): GridLayout {
  const rows = Math.ceil(count / GRID_COLUMNS);
  const columns = Math.min(count, GRID_COLUMNS);
  return {
    width: 2 * MARGIN + columns * TILE + (columns - 1) * GAP,
    height: HEADER + MARGIN + rows * (TILE + LABELS) + (rows - 1) * GAP,
    tile: (k) => ({
      left: MARGIN + (k % GRID_COLUMNS) * (TILE + GAP),
      top: HEADER + Math.floor(k / GRID_COLUMNS) * (TILE + LABELS + GAP),
      size: TILE,
      frame: FRAME,
    }),
  };
}

/** `count` test images drawn without replacement by a seeded shuffle (like a shuffled test loader's first batch). */
export function sampleIndices(ds: Dataset, seed: number, count = GRID_IMAGES): Uint32Array {
  return new Random(seed).permutation(ds.count).subarray(0, Math.min(count, ds.count));
}

export async function predictTiles(model: ShuffleNetV2, ds: Dataset, indices: ArrayLike<number>): Promise<GridTile[]> {
  const rows = await classProbabilities(model, ds, indices);
  return rows.map((p, k) => {
    const c = topClass(p);
    const label = ds.labels[indices[k]];
    return {index: indices[k], predicted: CIFAR10_CLASSES[c], truth: CIFAR10_CLASSES[label], correct: c === label, confidence: p[c]};
  });
}

/** The grid as PNG bytes. */
export async function renderGrid(ds: Dataset, tiles: GridTile[], title: string): Promise<Buffer> {
  const layout = gridLayout(tiles.length);
  const canvas = Buffer.alloc(layout.width * layout.height * 3, 255);
  const overlay: string[] = [svgText(layout.width / 2, 28, title, {size: 18, anchor: 'middle', weight: 'bold'})];
  tiles.forEach((t, k) => {
    const {left, top} = layout.tile(k);
    const pixels = datasetImageHwc(ds, t.index);
    for (let y = 0; y < TILE; y++) {
      for (let x = 0; x < TILE; x++) {
        const src = (Math.floor(y / SCALE) * IMAGE_SIZE + Math.floor(x / SCALE)) * 3;
        canvas.set(pixels.subarray(src, src + 3), ((top + y) * layout.width + left + x) * 3);
      }
    }
    const colour = t.correct ? RIGHT_COLOUR : WRONG_COLOUR;
    const half = FRAME / 2;
    overlay.push(`<rect x="${left - half}" y="${top - half}" width="${TILE + FRAME}" height="${TILE + FRAME}" fill="none" stroke="${colour}" stroke-width="${FRAME}"/>`);
    overlay.push(svgText(left + TILE / 2, top + TILE + FRAME + 15, `pred: ${t.predicted}`, {size: 14, anchor: 'middle', weight: 'bold', fill: colour}));
    overlay.push(svgText(left + TILE / 2, top + TILE + FRAME + 32, `true: ${t.truth}`, {size: 13, anchor: 'middle', fill: '#333'}));
  });
  return sharp(canvas, {raw: {width: layout.width, height: layout.height, channels: 3}})
    .composite([{input: Buffer.from(svgDocument(layout.width, layout.height, overlay.join('')))}])
    .png()
    .toBuffer();
}

export interface GridOptions {
  data: DataSource;
  dataDir?: string;
  /** Seeds which test images are drawn. */
  seed: number;
  out: string;
}

export interface GridResult {
  out: string;
  width: number;
  height: number;
  source: string;
  images: number;
  correct: number;
  /** In grid order: row by row, left to right. */
  tiles: GridTile[];
}

/** Draws GRID_IMAGES test images, predicts them and writes the grid PNG. */
export async function writePredictionGrid(model: ShuffleNetV2, options: GridOptions): Promise<GridResult> {
  // Only the test split is drawn from; the smallest train split keeps loading cheap.
  const {test, source} = await resolveDataset({data: options.data, dir: options.dataDir, trainLimit: 1});
  const tiles = await predictTiles(model, test, sampleIndices(test, options.seed));
  const correct = tiles.filter((t) => t.correct).length;
  const title = `${correct}/${tiles.length} right on ${source} test images (green: right, red: wrong)`;
  await writeImage(options.out, await renderGrid(test, tiles, title));
  const {width, height} = gridLayout(tiles.length);
  return {out: options.out, width, height, source, images: tiles.length, correct, tiles};
}
