/** Curves from history.jsonl: reading (and refusing) histories, axis ticks, the rendered PNG. */
import assert from 'node:assert/strict';
import {promises as fs} from 'node:fs';
import path from 'node:path';
import {after, before, test} from 'node:test';

import {UserError} from '../../src/cli/errors.js';
import {formatTick, niceAxis} from '../../src/plot/chart.js';
import {CURVES_SIZE, plotRun} from '../../src/plot/curves.js';
import {readHistory} from '../../src/plot/history.js';
import {tempDir} from '../data/helpers.js';
import {pixelStdev, readPicture} from './helpers.js';

let dir: string;

before(async () => {
  dir = await tempDir('dtrain-plot-');
});

after(() => fs.rm(dir, {recursive: true, force: true}));

/** A history line as `dtrain run` writes it (epoch from 0), with a falling loss and a plateau-style lr. */
function record(epoch: number): string {
  const loss = 2.3 * Math.exp(-epoch / 5) + 0.3;
  return JSON.stringify({epoch, trainLoss: loss, trainAccuracy: 1 - loss / 2.6, testLoss: loss + 0.1, testAccuracy: 0.95 - loss / 2.6, lr: 0.1 * 0.94 ** Math.floor(epoch / 3), imagesPerSec: 900, seconds: 55, perClass: {}});
}

async function runDir(name: string, content: string): Promise<string> {
  const d = path.join(dir, name);
  await fs.mkdir(d, {recursive: true});
  await fs.writeFile(path.join(d, 'history.jsonl'), content);
  return d;
}

test('niceAxis: 1-2-5 steps, ends on ticks, flat ranges widened, whole epochs', () => {
  assert.deepEqual(niceAxis(0.31, 2.47).ticks, [0, 0.5, 1, 1.5, 2, 2.5]);
  assert.deepEqual(niceAxis(1, 20, 6, true).ticks, [0, 5, 10, 15, 20]);
  assert.deepEqual(niceAxis(1, 2, 6, true).ticks, [1, 2]);
  const flat = niceAxis(0.1, 0.1);
  assert.ok(flat.lo < 0.1 && flat.hi > 0.1);
  assert.equal(formatTick(0.085, 0.005), '0.085');
  assert.equal(formatTick(40, 20), '40');
  assert.equal(formatTick(2e-6, 1e-6), '2e-6');
  assert.equal(formatTick(1.5e-6, 5e-7), '1.5e-6');
});

test('readHistory: the last run of a reused run dir, epochs in order', async () => {
  const d = await runDir('reused', [0, 1, 2].map(record).join('\n') + '\n' + [0, 1, 2, 3].map(record).join('\n') + '\n');
  const h = await readHistory(d);
  assert.equal(h.points.length, 4);
  assert.equal(h.earlierLines, 3);
  assert.deepEqual(
    h.points.map((p) => p.epoch),
    [0, 1, 2, 3],
  );
  assert.equal((await readHistory(path.join(d, 'history.jsonl'))).points.length, 4, 'the .jsonl itself is accepted');
});

test('readHistory: missing dir, no history, empty, corrupt line, missing field → one clear UserError each (exit 5)', async () => {
  await fs.mkdir(path.join(dir, 'bare'), {recursive: true});
  const cases: Array<[string, RegExp]> = [
    [path.join(dir, 'nowhere'), /nowhere does not exist/],
    [path.join(dir, 'bare'), /bare has no history\.jsonl/],
    [await runDir('empty', '\n'), /is empty: no epoch has finished/],
    [await runDir('corrupt', `${record(0)}\n{"epoch": 1, "trainLoss"\n`), /line 2 is not valid JSON/],
    [await runDir('fields', `${record(0)}\n{"epoch": 1, "trainLoss": 1}\n`), /line 2 has no numeric trainAccuracy/],
  ];
  for (const [input, message] of cases) {
    await assert.rejects(readHistory(input), (e: unknown) => e instanceof UserError && e.exitCode === 5 && message.test(e.message) && !e.message.includes('\n'));
  }
});

test('plotRun: a 1500×500 PNG with three panels drawn', async () => {
  const d = await runDir('twenty', Array.from({length: 20}, (_, e) => record(e)).join('\n') + '\n');
  const out = path.join(dir, 'curves.png');
  const r = await plotRun(d, out);
  assert.equal(r.epochs, 20);
  const picture = await readPicture(out);
  assert.deepEqual([picture.width, picture.height], [CURVES_SIZE.width, CURVES_SIZE.height]);
  assert.ok(pixelStdev(picture) > 10, 'not blank');
  // Each third of the figure (one panel) has ink of its own.
  for (let panel = 0; panel < 3; panel++) {
    let dark = 0;
    for (let y = 60; y < picture.height; y++) {
      for (let x = panel * 500; x < (panel + 1) * 500; x++) {
        const o = (y * picture.width + x) * picture.channels;
        if (picture.data[o] + picture.data[o + 1] + picture.data[o + 2] < 600) dark++;
      }
    }
    assert.ok(dark > 2000, `panel ${panel}: ${dark} drawn pixels`);
  }
  await assert.rejects(plotRun(d, path.join(dir, 'no-such-dir', 'c.png')), /cannot write/);
});
