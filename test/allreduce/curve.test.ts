/**
 * The ring over CURVE, every rank in this process on loopback: only the job's keys get through
 * (a stranger with its own key pair and a plain socket deliver nothing), raw TCP garbage is
 * dropped, and the all-reduce stays exact. The same stranger against a plain ring is the control.
 */
import assert from 'node:assert/strict';
import {connect} from 'node:net';
import {test} from 'node:test';

import {Push} from 'zeromq';

import {newCurveKeyPair, openZapDomain, z85Encode} from '../../src/allreduce/curve.js';
import {encodeHeader, jobHash, Phase} from '../../src/allreduce/header.js';
import {RingAllReduce} from '../../src/allreduce/index.js';

const N = 3;

async function ring(lines: string[], curve: boolean): Promise<{ranks: RingAllReduce[]; publicKeys: string[]}> {
  const pairs = Array.from({length: N}, () => newCurveKeyPair());
  const peers = pairs.map((p) => p.publicKey);
  const ranks = pairs.map((pair, rank) => new RingAllReduce({rank, worldSize: N, chunkBytes: 256, timeoutMs: 10_000, logger: (l) => lines.push(l), curve: curve ? {...pair, peers} : undefined}));
  const endpoints = await Promise.all(ranks.map((r) => r.start()));
  for (const r of ranks) r.connect(endpoints);
  return {ranks, publicKeys: peers};
}

/** Small integers: every partial sum is exact in float32, so the ring's mean is exactly fround(sum / N). */
function inputsAndMean(length: number): {inputs: Float32Array[]; mean: Float32Array} {
  const inputs = Array.from({length: N}, (_, r) => Float32Array.from({length}, (_, i) => ((i * 7 + r * 13) % 31) - 15));
  const mean = Float32Array.from({length}, (_, i) => inputs.reduce((s, x) => s + x[i], 0) / N);
  return {inputs, mean};
}

/** A stranger's messages: junk and, with poison, the very header rank 1 expects first carrying 1e30s. */
async function intrude(socket: Push, poison: boolean): Promise<void> {
  const header = {phase: Phase.reduceScatter, sender: 0, worldSize: N, ringStep: 0, jobHash: jobHash('job'), step: 1, chunk: 0, offset: 0, count: 64};
  // One send at a time (ZeroMQ allows one pending send per socket). Against CURVE the handshake
  // never completes, so the first send never does either: it is abandoned (and rejects on close).
  const sends = (async () => {
    await socket.send(Buffer.from('not a ring message'));
    if (poison) await socket.send([encodeHeader(header), Buffer.from(new Float32Array(64).fill(1e30).buffer)]);
  })().catch(() => {});
  await Promise.race([sends, new Promise((r) => setTimeout(r, 300))]);
}

/** Random-looking bytes on a raw TCP connection: resolves 'closed' when the inbox drops it. */
function rawGarbage(endpoint: string): Promise<'closed' | 'open'> {
  const port = Number(/:(\d+)$/.exec(endpoint)![1]);
  const bytes = Buffer.from(Array.from({length: 8192}, (_, i) => (i * 2654435761) >>> 24));
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    const timer = setTimeout(() => {
      s.destroy();
      resolve('open');
    }, 2000);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

test('z85Encode writes keys the way curveKeyPair does (RFC 32 test vector)', () => {
  assert.equal(z85Encode(Uint8Array.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b])), 'HelloWorld');
});

for (const curve of [false, true]) {
  test(`${curve ? 'CURVE ring: a stranger\'s key pair and a plain socket are refused at the handshake' : 'control, plain ring: the same stranger\'s messages reach the inbox'}; raw TCP garbage is dropped; the mean is exact`, async () => {
    const lines: string[] = [];
    const {ranks, publicKeys} = await ring(lines, curve);
    const stranger = new Push({linger: 0});
    const plain = new Push({linger: 0});
    if (curve) {
      const own = newCurveKeyPair();
      // The stranger even knows rank 1's public key: only the client key decides.
      stranger.curveServerKey = publicKeys[1];
      stranger.curvePublicKey = own.publicKey;
      stranger.curveSecretKey = own.secretKey;
    }
    try {
      stranger.connect(ranks[1].endpoint!);
      plain.connect(ranks[2].endpoint!);
      // The poison would win the race for rank 1's first slot on a plain ring (breaking it); the control sends junk only.
      const [, garbage] = await Promise.all([intrude(stranger, curve), rawGarbage(ranks[0].endpoint!)]);
      assert.equal(garbage, 'closed', 'the inbox dropped the raw TCP connection');
      if (curve) await intrude(plain, true);
      else await new Promise((r) => setTimeout(r, 100));
      const {inputs, mean} = inputsAndMean(300);
      const out = inputs.map((x) => x.slice());
      await Promise.all(ranks.map((r, i) => r.allReduceMean(out[i], {job: 'job', step: 1})));
      for (const o of out) assert.deepEqual(o, mean, 'every rank holds the exact mean');
      if (curve) {
        assert.deepEqual(ranks.map((r) => r.dropped), [0, 0, 0], `nothing from a stranger reached an all-reduce:\n${lines.join('\n')}`);
        assert.ok(ranks[1].refusedConnections >= 1, 'rank 1 refused the stranger\'s key');
        assert.match(lines.join('\n'), /rank 1 refused a ring connection from 127\.0\.0\.1: its CURVE key is not this job's/);
      } else {
        assert.ok(ranks[1].dropped >= 1, 'the stranger\'s junk was delivered (and dropped by the header check)');
      }
    } finally {
      stranger.close();
      plain.close();
      for (const r of ranks) r.close();
    }
  });
}

test('CURVE rings one after another in one process (a worker\'s next job): the ZAP handler comes back each time', async () => {
  // Back to back: the next handler must wait for the last one to release inproc://zeromq.zap.01.
  for (let i = 0; i < 20; i++) (await openZapDomain('back-to-back', () => {})).close();
  for (let job = 0; job < 3; job++) {
    const {ranks} = await ring([], true);
    try {
      const {inputs, mean} = inputsAndMean(100);
      const out = inputs.map((x) => x.slice());
      await Promise.all(ranks.map((r, i) => r.allReduceMean(out[i], {job: `job-${job}`, step: 0})));
      for (const o of out) assert.deepEqual(o, mean);
    } finally {
      for (const r of ranks) r.close();
    }
  }
});
