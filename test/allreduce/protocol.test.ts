/** The pure parts: header encoding and the message schedule every rank derives independently. */
import assert from 'node:assert/strict';
import {describe, test} from 'node:test';

import {decodeHeader, encodeHeader, HEADER_BYTES, jobHash, Phase} from '../../src/allreduce/header.js';
import {mod, nextTransfer, receiveSchedule, segmentChunks} from '../../src/allreduce/schedule.js';

describe('header', () => {
  test('round-trips every field at its limits', () => {
    const h = {phase: Phase.allGather, sender: 65535, worldSize: 65535, ringStep: 65534, jobHash: 0xffffffff, step: 0xffffffff, chunk: 123456, offset: 0xfffffff0, count: 65536};
    const b = encodeHeader(h);
    assert.equal(b.length, HEADER_BYTES);
    assert.equal(b.subarray(0, 4).toString('latin1'), 'DTAR');
    assert.deepEqual(decodeHeader(b), h);
  });

  test('reports why bytes are not a header, never throws', () => {
    const good = encodeHeader({phase: Phase.reduceScatter, sender: 1, worldSize: 2, ringStep: 0, jobHash: jobHash('j'), step: 1, chunk: 0, offset: 0, count: 1});
    assert.match(decodeHeader(good.subarray(0, 31)) as string, /31 bytes/);
    assert.equal(decodeHeader(Buffer.alloc(32)), 'bad magic');
    const wrongVersion = Buffer.from(good);
    wrongVersion[4] = 9;
    assert.match(decodeHeader(wrongVersion) as string, /version 9/);
    const wrongPhase = Buffer.from(good);
    wrongPhase[5] = 7;
    assert.match(decodeHeader(wrongPhase) as string, /phase 7/);
  });

  test('job hash is FNV-1a 32 of the UTF-8 bytes', () => {
    assert.equal(jobHash(''), 0x811c9dc5);
    assert.equal(jobHash('a'), 0xe40c292c);
    assert.notEqual(jobHash('job-1'), jobHash('job-2'));
  });
});

describe('schedule', () => {
  for (const [length, worldSize, chunkElems] of [
    [0, 3, 4],
    [2, 5, 1],
    [11, 4, 2],
    [1009, 5, 64],
    [100, 2, 1000],
  ] as const) {
    test(`length ${length}, N = ${worldSize}, chunks of ${chunkElems}: segments tile the buffer and the stream lines up`, () => {
      const covered = new Uint8Array(length);
      for (let s = 0; s < worldSize; s++) {
        for (const c of segmentChunks(length, worldSize, s, chunkElems)) {
          assert.ok(c.count > 0 && c.count <= chunkElems);
          for (let i = c.offset; i < c.offset + c.count; i++) covered[i]++;
        }
      }
      assert.ok(covered.every((c) => c === 1), 'every element in exactly one chunk');
      for (let rank = 0; rank < worldSize; rank++) {
        const rx = receiveSchedule(length, worldSize, rank, chunkElems);
        // What the predecessor sends: its own segment at reduce-scatter step 0, then each received chunk one step on.
        const pred = mod(rank - 1, worldSize);
        const sent = [
          ...segmentChunks(length, worldSize, pred, chunkElems).map((chunk) => ({phase: Phase.reduceScatter, ringStep: 0, chunk})),
          ...receiveSchedule(length, worldSize, pred, chunkElems).flatMap((t) => nextTransfer(t, worldSize) ?? []),
        ];
        assert.deepEqual(sent, rx, `rank ${rank} receives exactly what rank ${pred} sends, in the same order`);
        // Reduce-scatter brings every segment but the own one, all-gather every segment but the one this rank summed.
        const own = segmentLength(length, worldSize, rank);
        const summed = segmentLength(length, worldSize, mod(rank + 1, worldSize));
        assert.equal(rx.reduce((n, t) => n + t.chunk.count, 0), 2 * length - own - summed);
      }
    });
  }
});

function segmentLength(length: number, worldSize: number, s: number): number {
  return segmentChunks(length, worldSize, s, Math.max(1, length)).reduce((n, c) => n + c.count, 0);
}
