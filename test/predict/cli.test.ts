/**
 * eval, predict (files, URLs, failures, grid) and plot through the built CLI (node bin/run.js),
 * on a tiny model trained here on one-colour-per-class images, and a real `dtrain run` for plot.
 * Skipped when dist/ lacks the commands (run `npm run build` first).
 */
import assert from 'node:assert/strict';
import {promises as fs} from 'node:fs';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {CIFAR10_CLASSES, writeCifar10Dir} from '../../src/data/index.js';
import {CURVES_SIZE} from '../../src/plot/curves.js';
import {gridLayout} from '../../src/predict/grid.js';
import {serve, tempDir, type TestServer} from '../data/helpers.js';
import {
  BUILT,
  colourSet,
  countPixels,
  cycle,
  dtrain,
  encodeImage,
  greenish,
  pixel,
  pixelStdev,
  readPicture,
  reddish,
  trainColourCheckpoint,
} from './helpers.js';

interface Outcome {
  input: string;
  class?: string;
  probabilities?: Record<string, number>;
  error?: string;
}

/** The first 8 test images show class k but are labelled k+1: exactly 8 wrong answers for a perfect model. */
const MISLABELLED = 8;
const TEST_COUNT = 80;

describe('dtrain eval / predict / plot (built CLI)', {skip: BUILT ? false : 'dist/ not built (npm run build)'}, () => {
  let dir: string;
  let checkpoint: string;
  let dataDir: string;
  const servers: TestServer[] = [];

  before(async () => {
    dir = await tempDir('dtrain-predict-');
    checkpoint = path.join(dir, 'colours.safetensors');
    await fs.writeFile(checkpoint, await trainColourCheckpoint());
    const shown = cycle(TEST_COUNT);
    const labels = shown.map((c, k) => (k < MISLABELLED ? (c + 1) % 10 : c));
    dataDir = path.join(dir, 'data');
    await writeCifar10Dir(dataDir, colourSet(cycle(10), 3), colourSet(shown, 2, labels));
  });

  after(async () => {
    for (const s of servers) await s.close();
    await fs.rm(dir, {recursive: true, force: true});
  });

  test('eval: accuracy, loss, count and the per-class table; size mismatch is one line, exit 2', async () => {
    const json = await dtrain('eval', '--checkpoint', checkpoint, '--data', 'cifar10', '--data-dir', dataDir, '--backend', 'wasm', '--json');
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout) as {accuracy: number; count: number; correct: number; loss: number; backend: string; size: number; epoch: number; perClass: Record<string, number>};
    assert.equal(r.count, TEST_COUNT);
    assert.equal(r.backend, 'wasm');
    assert.equal(r.size, 0.5);
    assert.equal(r.epoch, 6);
    assert.deepEqual(Object.keys(r.perClass), [...CIFAR10_CLASSES]);
    assert.ok(Number.isFinite(r.loss) && r.loss > 0);
    // Every correctly labelled image right, every mislabelled one wrong.
    assert.equal(r.correct, TEST_COUNT - MISLABELLED, `accuracy ${r.accuracy}`);
    assert.equal(r.accuracy, r.correct / r.count);
    assert.equal(r.perClass.truck, 1);
    assert.equal(r.perClass.automobile, 7 / 8, 'automobile: 1 of its 8 images shows an airplane');

    const human = await dtrain('eval', '--checkpoint', checkpoint, '--data-dir', dataDir, '--backend', 'wasm');
    assert.equal(human.code, 0, human.stderr);
    for (const name of CIFAR10_CLASSES) assert.match(human.stdout, new RegExp(`^${name}\\s+\\d+\\.\\d\\d%$`, 'm'));
    assert.match(human.stdout, /test accuracy 90\.00% \(72\/80\)/);
    console.log(human.stdout);

    const wrong = await dtrain('eval', '--checkpoint', checkpoint, '--size', '1', '--data-dir', dataDir);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /^Error: .*size 0\.5 checkpoint \(its metadata\), not size 1$/m);
  });

  test('predict: files and a URL classified right; 404, timeout, non-image, missing file: one line each, others done, exit non-zero', async () => {
    const images = colourSet(cycle(10), 9);
    const formats = ['png', 'jpeg', 'webp'] as const;
    const files: string[] = [];
    for (let c = 0; c < 10; c++) {
      const file = path.join(dir, `class${c}.${formats[c % 3]}`);
      await fs.writeFile(file, await encodeImage(images, c, formats[c % 3]));
      files.push(file);
    }
    const notImage = path.join(dir, 'notes.png');
    await fs.writeFile(notImage, 'not an image at all');
    const good = await serve(await encodeImage(images, 3, 'png'));
    const missing = await serve(Buffer.alloc(0), {notFound: true});
    const silent = await serve(Buffer.alloc(0), {stall: true});
    servers.push(good, missing, silent);
    const inputs = [...files, good.url('/cat.png'), missing.url('/nothing.png'), notImage, path.join(dir, 'absent.jpg'), silent.url('/slow.png')];
    const started = Date.now();
    const r = await dtrain('predict', '--checkpoint', checkpoint, '--backend', 'wasm', '--timeout', '1', '--json', ...inputs);
    assert.ok(Date.now() - started < 30_000, 'the stalled URL must time out after --timeout');
    assert.notEqual(r.code, 0);
    const outcomes = JSON.parse(r.stdout) as Outcome[];
    assert.deepEqual(
      outcomes.map((o) => o.input),
      inputs,
    );
    outcomes.slice(0, 10).forEach((o, c) => {
      assert.equal(o.class, CIFAR10_CLASSES[c], `${o.input}: ${JSON.stringify(o.probabilities)}`);
      const ps = Object.values(o.probabilities!);
      assert.equal(ps.length, 10);
      assert.ok(Math.abs(ps.reduce((a, b) => a + b, 0) - 1) < 1e-4);
    });
    assert.equal(outcomes[10].class, 'cat', 'the URL');
    const failures = outcomes.slice(11);
    assert.ok(failures.every((f) => typeof f.error === 'string' && f.class === undefined));
    assert.match(failures[0].error!, /HTTP 404/);
    assert.match(failures[1].error!, /not an image/);
    assert.match(failures[2].error!, /no such file/);
    assert.match(failures[3].error!, /within 1 s/);
    const errorLines = r.stderr.split('\n').filter((l) => l.startsWith('Error: '));
    assert.equal(errorLines.length, 5, r.stderr);
    for (const f of failures) assert.ok(errorLines.some((l) => l.includes(f.input)), `one line names ${f.input}`);
    assert.match(errorLines[4], /4 of 15 inputs could not be classified/);

    const human = await dtrain('predict', '--checkpoint', checkpoint, '--backend', 'wasm', files[6]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /class6\.png: frog \(\d+\.\d%\)/);
    assert.match(human.stdout, /airplane \d+\.\d%.*truck \d+\.\d%/s);
  });

  test('predict --grid: 8×8 test images, green frames where right and red where wrong', async () => {
    const out = path.join(dir, 'grid.png');
    const r = await dtrain('predict', '--checkpoint', checkpoint, '--grid', out, '--data-dir', dataDir, '--seed', '5', '--backend', 'wasm', '--json');
    assert.equal(r.code, 0, r.stderr);
    const grid = JSON.parse(r.stdout) as {images: number; correct: number; width: number; height: number; tiles: Array<{index: number; correct: boolean}>};
    assert.equal(grid.images, 64);
    assert.equal(grid.correct, grid.tiles.filter((t) => t.correct).length);
    const wrong = grid.tiles.filter((t) => !t.correct);
    assert.ok(wrong.length > 0 && wrong.every((t) => t.index < MISLABELLED), 'the wrong ones are the mislabelled images');
    const picture = await readPicture(out);
    assert.equal(picture.width, grid.width);
    assert.equal(picture.height, grid.height);
    assert.ok(pixelStdev(picture) > 20, 'not blank');
    assert.ok(countPixels(picture, greenish) > 1000 && countPixels(picture, reddish) > 1000, 'both green and red');
    const layout = gridLayout(64);
    grid.tiles.forEach((t, k) => {
      const {left, top, size, frame} = layout.tile(k);
      const rgb = pixel(picture, left - frame / 2, top + size / 2);
      assert.ok(t.correct ? greenish(rgb) : reddish(rgb), `tile ${k} frame ${rgb} (correct: ${t.correct})`);
    });
  });

  test('run → eval agrees with the run; plot draws the curves; a missing history is one line, exit 5', async () => {
    const runDir = path.join(dir, 'run');
    const run = await dtrain('run', '--data', 'synthetic', '--epochs', '2', '--train-limit', '40', '--test-limit', '20', '--batch-size', '20', '--backend', 'wasm', '--run-dir', runDir);
    assert.equal(run.code, 0, run.stderr);
    const history = (await fs.readFile(path.join(runDir, 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as {testAccuracy: number; testLoss: number});
    const ev = await dtrain('eval', '--checkpoint', path.join(runDir, 'checkpoint-epoch2.safetensors'), '--data', 'synthetic', '--test-limit', '20', '--backend', 'wasm', '--json');
    assert.equal(ev.code, 0, ev.stderr);
    const e = JSON.parse(ev.stdout) as {accuracy: number; loss: number};
    assert.equal(e.accuracy, history[1].testAccuracy);
    assert.ok(Math.abs(e.loss - history[1].testLoss) < 1e-6);

    const out = path.join(dir, 'curves.png');
    const plot = await dtrain('plot', runDir, '--out', out);
    assert.equal(plot.code, 0, plot.stderr);
    assert.match(plot.stdout, /wrote .*curves\.png \(1500×500\): 2 epochs/);
    const picture = await readPicture(out);
    assert.deepEqual([picture.width, picture.height], [CURVES_SIZE.width, CURVES_SIZE.height]);
    assert.ok(pixelStdev(picture) > 10, 'not blank');
    // The train (blue), test (orange) and learning-rate (green) lines are drawn.
    assert.ok(countPixels(picture, ([r, , b]) => b > 150 && r < 80) > 50, 'train line');
    assert.ok(countPixels(picture, ([r, g, b]) => r > 220 && g > 100 && g < 160 && b < 60) > 50, 'test line');
    assert.ok(countPixels(picture, greenish) > 50, 'lr line');

    const none = await dtrain('plot', path.join(dir, 'no-such-run'), '--out', out);
    assert.equal(none.code, 5);
    assert.equal(none.stderr.split('\n').filter((l) => l.startsWith('Error: ')).length, 1, none.stderr);
  });
});
