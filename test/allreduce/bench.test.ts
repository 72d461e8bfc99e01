/** `dtrain bench allreduce`: byte parsing, bandwidth arithmetic, real worker processes, the built CLI. */
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {existsSync} from 'node:fs';
import path from 'node:path';
import {describe, test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {benchAllReduce, busBandwidth, parseBytes} from '../../src/allreduce/bench.js';
import {UserError} from '../../src/cli/errors.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const built = existsSync(path.join(root, 'dist/commands/bench/allreduce.js'));

describe('bench allreduce', () => {
  test('parseBytes: plain numbers and decimal/binary suffixes, rounded down to float32 elements', () => {
    assert.equal(parseBytes('4096'), 4096);
    assert.equal(parseBytes('1.4MB'), 1_400_000);
    assert.equal(parseBytes('10 MB'), 10_000_000);
    assert.equal(parseBytes('21mb'), 21_000_000);
    assert.equal(parseBytes('256KiB'), 262_144);
    assert.equal(parseBytes('1GiB'), 2 ** 30);
    assert.equal(parseBytes('1.5kb'), 1500);
    assert.equal(parseBytes('7'), 4);
    for (const bad of ['', 'MB', '10 XB', '-5', '2', '1e6']) assert.throws(() => parseBytes(bad), UserError, bad);
  });

  test('busbw = algbw · 2(N−1)/N', () => {
    assert.equal(busBandwidth(1, 1), 0);
    assert.equal(busBandwidth(1, 2), 1);
    assert.equal(busBandwidth(1, 4), 1.5);
  });

  test('three worker processes report consistent numbers', async () => {
    const results = await benchAllReduce({workers: 3, sizes: [4000, 120_000], iters: 3, warmup: 1, ring: {chunkBytes: 16384, timeoutMs: 20_000}});
    assert.deepEqual(
      results.map((r) => [r.workers, r.bytes, r.iters]),
      [
        [3, 4000, 3],
        [3, 120_000, 3],
      ],
    );
    for (const r of results) {
      assert.ok(r.minMs > 0 && r.minMs <= r.medianMs && r.medianMs <= r.maxMs);
      assert.ok(Math.abs(r.algbwGBs - r.bytes / r.medianMs / 1e6) < 1e-12);
      assert.ok(Math.abs(r.busbwGBs - (r.algbwGBs * 4) / 3) < 1e-12);
    }
  });

  test('dtrain bench allreduce --security both --json: plain and CURVE rings side by side, each checked exact (built CLI)', {skip: built ? false : 'dist/ not built (npm run build)'}, async () => {
    const {stdout} = await new Promise<{stdout: string}>((resolve, reject) =>
      execFile(process.execPath, [path.join(root, 'bin/run.js'), 'bench', 'allreduce', '--workers', '2', '--bytes', '64KB,0.1MB', '--iters', '2', '--warmup', '1', '--partial-sums', 'float64', '--security', 'both', '--no-torch', '--json'], {cwd: root, timeout: 60_000}, (err, out) =>
        err ? reject(err) : resolve({stdout: out}),
      ),
    );
    const json = JSON.parse(stdout) as {results: Array<Record<string, number>>};
    assert.deepEqual(
      json.results.map((r) => [r.security, r.workers, r.bytes]),
      [
        ['plain', 2, 64_000],
        ['plain', 2, 100_000],
        ['curve', 2, 64_000],
        ['curve', 2, 100_000],
      ],
    );
    for (const r of json.results) for (const key of ['medianMs', 'algbwGBs', 'busbwGBs']) assert.ok(r[key] > 0, key);
  });

  test('dtrain bench allreduce --grad-compression none,fp16 --json: fp16 rows beside uncompressed ones, each checked (built CLI)', {skip: built ? false : 'dist/ not built (npm run build)'}, async () => {
    const {stdout} = await new Promise<{stdout: string}>((resolve, reject) =>
      execFile(process.execPath, [path.join(root, 'bin/run.js'), 'bench', 'allreduce', '--workers', '3', '--bytes', '0.1MB', '--iters', '2', '--warmup', '1', '--partial-sums', 'float32', '--grad-compression', 'none,fp16', '--no-torch', '--json'], {cwd: root, timeout: 60_000}, (err, out) =>
        err ? reject(err) : resolve({stdout: out}),
      ),
    );
    const json = JSON.parse(stdout) as {results: Array<{compression: string; partialSums: string | null; workers: number; busbwGBs: number}>};
    assert.deepEqual(
      json.results.map((r) => [r.compression, r.partialSums, r.workers]),
      [
        ['none', 'float32', 3],
        ['fp16', null, 3],
      ],
    );
    for (const r of json.results) assert.ok(r.busbwGBs > 0);
  });

  test('a bad --bytes is a one-line usage error (built CLI)', {skip: built ? false : 'dist/ not built (npm run build)'}, async () => {
    const res = await new Promise<{code: number; stderr: string}>((resolve) =>
      execFile(process.execPath, [path.join(root, 'bin/run.js'), 'bench', 'allreduce', '--bytes', '10XB'], {cwd: root, timeout: 30_000}, (err, _out, stderr) =>
        resolve({code: err ? Number(err.code) : 0, stderr}),
      ),
    );
    assert.equal(res.code, 2);
    assert.match(res.stderr, /^Error: cannot read "10XB" as a byte count\nTry this: /);
  });
});
