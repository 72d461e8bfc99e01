import assert from 'node:assert/strict';
import {promises as fs} from 'node:fs';
import path from 'node:path';
import {after, describe, test} from 'node:test';

import {ExitCode, UserError} from '../../src/cli/errors.js';
import {CIFAR10_SUBDIR, classifyNetworkError, downloadFile, ensureCifar10, extractCifar10Tarball, loadCifar10, NetworkError} from '../../src/data/index.js';
import {closedPort, FIXTURE, FIXTURE_MD5, fixtureBytes, serve, tempDirs} from './helpers.js';

const body = fixtureBytes();
const fast = {retryDelayMs: 0, timeoutMs: 5000};

async function listing(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch {
    return [];
  }
}

function isNetworkError(...words: RegExp[]) {
  return (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.equal(error.exitCode, ExitCode.network);
    for (const w of words) assert.match(`${error.message} ${error.suggestion ?? ''}`, w);
    return true;
  };
}

describe('dtrain data download (against a local HTTP server)', () => {
  const newDir = tempDirs(after);

  test('downloads, verifies the md5, extracts, reports progress; a second run does nothing', async () => {
    const server = await serve(body);
    const dir = await newDir();
    try {
      const reports: Array<{received: number; total?: number; done: boolean}> = [];
      const result = await ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast, progressIntervalMs: 0, onProgress: (p) => reports.push(p)});
      assert.equal(result.status, 'downloaded');
      assert.equal(result.train, 5000);
      assert.equal(result.test, 1000);
      assert.equal(result.tarballBytes, body.length);
      assert.equal(result.batchesDir, path.join(dir, CIFAR10_SUBDIR));
      const last = reports.at(-1)!;
      assert.ok(last.done && last.received === body.length && last.total === body.length, JSON.stringify(last));
      assert.ok(reports.length > 1);
      // Only the dataset is left: no tarball, no .part, no temp folder.
      assert.deepEqual(await listing(dir), [CIFAR10_SUBDIR]);
      assert.equal((await loadCifar10(dir, 'test')).count, 1000);

      const again = await ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast});
      assert.equal(again.status, 'present');
      assert.equal(again.md5, FIXTURE_MD5);
      assert.equal(server.requests.length, 1, 'an already-present dataset means no request');
    } finally {
      await server.close();
    }
  });

  test('follows a redirect', async () => {
    const server = await serve(body);
    const dir = await newDir();
    try {
      const result = await ensureCifar10({dir, url: server.url('/redirect'), md5: FIXTURE_MD5, ...fast});
      assert.equal(result.status, 'downloaded');
      assert.deepEqual(
        server.requests.map((r) => r.path),
        ['/redirect', '/file.tar.gz'],
      );
    } finally {
      await server.close();
    }
  });

  test('a connection cut mid-way is resumed with a Range request (retry within one run)', async () => {
    const server = await serve(body, {cutFirstAt: 4_000_000});
    const dir = await newDir();
    try {
      const result = await downloadFile(server.url(), path.join(dir, 'x.tar.gz'), {md5: FIXTURE_MD5, ...fast, retries: 2});
      assert.equal(result.attempts, 2);
      assert.equal(result.bytes, body.length);
      assert.equal(server.requests.length, 2);
      assert.equal(server.requests[0].range, undefined);
      const m = /^bytes=(\d+)-$/.exec(server.requests[1].range ?? '');
      assert.ok(m && Number(m[1]) > 0 && Number(m[1]) <= 4_000_000, `second request should continue: ${server.requests[1].range}`);
    } finally {
      await server.close();
    }
  });

  test('an interrupted run keeps the .part; the next run resumes it', async () => {
    const server = await serve(body, {cutFirstAt: 6_000_000});
    const dir = await newDir();
    try {
      await assert.rejects(
        ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast, retries: 0}),
        isNetworkError(/broke off/, /again to resume/),
      );
      const part = path.join(dir, 'file.tar.gz.part');
      const kept = (await fs.stat(part)).size;
      assert.ok(kept > 0 && kept <= 6_000_000, `partial file ${kept} bytes`);
      assert.ok(!(await listing(dir)).includes(CIFAR10_SUBDIR), 'nothing extracted from a partial download');

      const result = await ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast, retries: 0});
      assert.equal(result.status, 'downloaded');
      assert.equal(result.resumedFrom, kept);
      assert.equal(server.requests[1].range, `bytes=${kept}-`);
      assert.deepEqual(await listing(dir), [CIFAR10_SUBDIR]);
    } finally {
      await server.close();
    }
  });

  test('a server that ignores Range: the download restarts cleanly from byte 0', async () => {
    const server = await serve(body, {ranges: false});
    const dir = await newDir();
    try {
      // A stale .part of garbage: if it were appended to, the md5 would fail.
      await fs.writeFile(path.join(dir, 'file.tar.gz.part'), Buffer.alloc(12345, 7));
      const result = await ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast});
      assert.equal(result.status, 'downloaded');
      assert.equal(server.requests[0].range, 'bytes=12345-');
      assert.equal(result.tarballBytes, body.length);
      const dest = path.join(dir, 'again.tar.gz');
      await fs.writeFile(`${dest}.part`, Buffer.alloc(999, 1));
      const direct = await downloadFile(server.url(), dest, {md5: FIXTURE_MD5, ...fast});
      assert.deepEqual([direct.resumedFrom, direct.restarts, direct.attempts, direct.bytes], [999, 1, 1, body.length]);
    } finally {
      await server.close();
    }
  });

  test('a .part already complete (server answers 416) starts over and succeeds', async () => {
    const server = await serve(body);
    const dir = await newDir();
    try {
      await fs.writeFile(path.join(dir, 'file.tar.gz.part'), body);
      const result = await ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast});
      assert.equal(result.status, 'downloaded');
      assert.deepEqual(
        server.requests.map((r) => r.range),
        [`bytes=${body.length}-`, undefined],
      );
    } finally {
      await server.close();
    }
  });

  test('a wrong md5 is refused: the file is removed and nothing is extracted', async () => {
    const server = await serve(body);
    const dir = await newDir();
    try {
      await assert.rejects(ensureCifar10({dir, url: server.url(), md5: '0'.repeat(32), ...fast}), (error: unknown) => {
        assert.ok(error instanceof UserError);
        assert.equal(error.exitCode, ExitCode.data);
        assert.match(error.message, new RegExp(`md5 is ${FIXTURE_MD5}, expected 0{32}`));
        assert.match(error.message, /removed and nothing was extracted/);
        return true;
      });
      assert.deepEqual(await listing(dir), []);
    } finally {
      await server.close();
    }
  });

  test('connection refused → one network UserError naming --data synthetic and --from-file', async () => {
    const dir = await newDir();
    const port = await closedPort();
    await assert.rejects(
      ensureCifar10({dir, url: `http://127.0.0.1:${port}/cifar-10-binary.tar.gz`, ...fast}),
      isNetworkError(/connection to 127\.0\.0\.1:\d+ refused/, /--data synthetic/, /--from-file PATH/, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))),
    );
    assert.deepEqual(await listing(dir), []);
  });

  test('no answer within the timeout → network UserError', async () => {
    const server = await serve(body, {stall: true});
    const dir = await newDir();
    try {
      await assert.rejects(ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, retryDelayMs: 0, timeoutMs: 300}), isNetworkError(/no response from 127\.0\.0\.1/, /--data synthetic/));
    } finally {
      await server.close();
    }
  });

  test('HTTP 404 → network UserError with the status', async () => {
    const server = await serve(body, {notFound: true});
    const dir = await newDir();
    try {
      await assert.rejects(ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast}), isNetworkError(/HTTP 404/));
    } finally {
      await server.close();
    }
  });

  test('DNS and other socket errors are classified', () => {
    assert.equal(classifyNetworkError(Object.assign(new Error('getaddrinfo ENOTFOUND x'), {code: 'ENOTFOUND'})), 'dns');
    assert.equal(classifyNetworkError(Object.assign(new Error('x'), {code: 'EAI_AGAIN'})), 'dns');
    assert.equal(classifyNetworkError(Object.assign(new Error('x'), {code: 'ECONNREFUSED'})), 'refused');
    assert.equal(classifyNetworkError(Object.assign(new Error('x'), {code: 'ENETUNREACH'})), 'unreachable');
    assert.equal(classifyNetworkError(Object.assign(new Error('x'), {code: 'CERT_HAS_EXPIRED'})), 'tls');
    assert.equal(classifyNetworkError(new NetworkError('m', 'timeout', 'u')), 'timeout');
  });

  test('--from-file: md5 verified then extracted; a wrong md5 leaves the user file alone', async () => {
    const dir = await newDir();
    await assert.rejects(ensureCifar10({dir, fromFile: FIXTURE}), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.exitCode, ExitCode.data);
      assert.match(error.message, /nothing was extracted/);
      assert.match(error.suggestion ?? '', new RegExp(`--md5 ${FIXTURE_MD5}`));
      return true;
    });
    assert.deepEqual(await listing(dir), []);
    const result = await ensureCifar10({dir, fromFile: FIXTURE, md5: FIXTURE_MD5});
    assert.equal(result.status, 'from-file');
    assert.equal(result.train, 5000);
    await fs.access(FIXTURE);
  });

  test('a tarball placed in the data dir by hand is used without any network', async () => {
    const dir = await newDir();
    await fs.copyFile(FIXTURE, path.join(dir, 'cifar-10-binary.tar.gz'));
    const port = await closedPort();
    const result = await ensureCifar10({dir, url: `http://127.0.0.1:${port}/cifar-10-binary.tar.gz`, md5: FIXTURE_MD5, ...fast});
    assert.equal(result.status, 'from-file');
    assert.equal(result.test, 1000);
  });

  test('a broken cache is fetched again; --force replaces a good one', async () => {
    const server = await serve(body);
    const dir = await newDir();
    try {
      await extractCifar10Tarball(FIXTURE, dir, {source: 'test', kind: 'file'});
      await fs.truncate(path.join(dir, CIFAR10_SUBDIR, 'data_batch_2.bin'), 100);
      const steps: string[] = [];
      const result = await ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast, onStep: (m) => steps.push(m)});
      assert.equal(result.status, 'downloaded');
      assert.ok(steps.some((s) => /not usable/.test(s)), steps.join('\n'));
      assert.equal((await loadCifar10(dir, 'train')).count, 5000);
      const forced = await ensureCifar10({dir, url: server.url(), md5: FIXTURE_MD5, ...fast, force: true});
      assert.equal(forced.status, 'downloaded');
      assert.equal(server.requests.length, 2);
    } finally {
      await server.close();
    }
  });

  test('extraction is atomic: a corrupt tarball leaves an existing dataset untouched and no temp folder', async () => {
    const dir = await newDir();
    await extractCifar10Tarball(FIXTURE, dir, {source: 'test', kind: 'file'});
    const broken = path.join(dir, 'broken.tar.gz');
    await fs.writeFile(broken, body.subarray(0, body.length >> 1));
    await assert.rejects(extractCifar10Tarball(broken, dir, {source: 'test', kind: 'file'}), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.exitCode, ExitCode.data);
      assert.match(error.message, /Could not extract/);
      return true;
    });
    assert.deepEqual(await listing(dir), ['broken.tar.gz', CIFAR10_SUBDIR]);
    assert.equal((await loadCifar10(dir, 'train')).count, 5000);
  });
});
