/**
 * The `dtrain data` commands through the built CLI (node bin/run.js → dist/). Skipped when dist/ has
 * no data commands (run `npm run build` first); the modules themselves are covered by the other tests.
 */
import assert from 'node:assert/strict';
import {execFile} from 'node:child_process';
import {existsSync} from 'node:fs';
import path from 'node:path';
import {after, describe, test} from 'node:test';
import {fileURLToPath} from 'node:url';

import {datasetDigest, generateSynthetic} from '../../src/data/index.js';
import {closedPort, FIXTURE_MD5, fixtureBytes, serve, tempDirs} from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const built = existsSync(path.join(root, 'dist/commands/data/download.js'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Async (not spawnSync): the test's own HTTP server must keep answering while the CLI runs. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/run.js'), ...args], {cwd: root, env: {...process.env, ...env}, timeout: 60_000}, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({code, stdout, stderr});
    });
  });
}

describe('dtrain data (built CLI)', {skip: built ? false : 'dist/ not built (npm run build)'}, () => {
  const newDir = tempDirs(after);

  test('synth writes the format; info reads it back', async () => {
    const dir = await newDir();
    const synth = await cli(['data', 'synth', '--dir', dir, '--train', '100', '--test', '20', '--seed', '4', '--json']);
    assert.equal(synth.code, 0, synth.stderr);
    const out = JSON.parse(synth.stdout) as {train: number; test: number; digest: {train: string}};
    assert.equal(out.train, 100);
    assert.equal(out.test, 20);
    assert.equal(out.digest.train, datasetDigest(generateSynthetic({trainCount: 100, testCount: 0, seed: 4}).train));
    const info = await cli(['data', 'info', '--dir', dir, '--json']);
    assert.equal(info.code, 0, info.stderr);
    const parsed = JSON.parse(info.stdout) as {splits: {train: {count: number; perClass: number[]}; test: {count: number}}; files: unknown[]};
    assert.equal(parsed.splits.train.count, 100);
    assert.deepEqual(parsed.splits.train.perClass, new Array(10).fill(10));
    assert.equal(parsed.splits.test.count, 20);
    assert.equal(parsed.files.length, 6);
  });

  test('download from a local server: progress on stderr, quiet with --json, then "already there"', async () => {
    const server = await serve(fixtureBytes());
    const dir = await newDir();
    try {
      const first = await cli(['data', 'download', '--dir', dir, '--url', server.url(), '--md5', FIXTURE_MD5]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stderr, /downloading .*\(100\.0%\) .*MB\/s/);
      assert.match(first.stdout, /CIFAR-10 ready in .* \(5,000 train \+ 1,000 test images, md5 57e4d7766028e24bf4886cc721224305 verified/);
      const second = await cli(['data', 'download', '--dir', dir, '--url', server.url(), '--md5', FIXTURE_MD5, '--json']);
      assert.equal(second.code, 0, second.stderr);
      assert.equal((JSON.parse(second.stdout) as {status: string}).status, 'present');
      assert.equal(second.stderr, '');
      assert.equal(server.requests.length, 1);
    } finally {
      await server.close();
    }
  });

  test('offline: exit code 4 and one line naming --data synthetic', async () => {
    const dir = await newDir();
    const port = await closedPort();
    const r = await cli(['data', 'download', '--url', `http://127.0.0.1:${port}/cifar-10-binary.tar.gz`], {DTRAIN_DATA_DIR: dir});
    assert.equal(r.code, 4);
    assert.match(r.stderr.replace(/\s*›\s*/g, ' '), /connection to 127\.0\.0\.1:\d+ refused.*--data synthetic.*--from-file PATH/);
  });

  test('info without a dataset: exit code 5 and what to do', async () => {
    const dir = await newDir();
    const r = await cli(['data', 'info'], {DTRAIN_DATA_DIR: dir});
    assert.equal(r.code, 5);
    assert.match(r.stderr.replace(/\s*›\s*/g, ' '), /dtrain data download/);
  });
});
