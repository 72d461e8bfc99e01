/** The PyTorch side of the benchmarks: parsing the helper's output, finding a torch, and the torch model equal to dtrain's. */
import assert from 'node:assert/strict';
import {describe, test} from 'node:test';

import {summarise} from '../../src/allreduce/bench.js';
import {UserError} from '../../src/cli/errors.js';
import {type ModelSize, architecture, countParams, stateEntries} from '../../src/model/architecture.js';
import {parseHelperOutput, probeTorch, pythonCandidates, torchAllReduceTimes, torchStateDict, torchStepTimes} from '../../src/bench/torch.js';

const probe = await probeTorch();
const noTorch = probe.available ? false : `PyTorch not available: ${probe.reason}`;
const python = probe.available ? probe.python : '';

describe('bench: PyTorch helper', () => {
  test('the last stdout line is the JSON result; anything else is a one-line UserError', () => {
    assert.deepEqual(parseHelperOutput('warning: x\n{"times": [1, 2]}\n\n'), {times: [1, 2]});
    for (const bad of ['', 'Traceback …', '[1, 2]', 'null', '{"a": 1}\nnot json']) assert.throws(() => parseHelperOutput(bad), UserError, bad);
  });

  test('interpreters: $DTRAIN_PYTHON alone when set, else python3 then /usr/bin/python3', () => {
    assert.deepEqual(pythonCandidates({DTRAIN_PYTHON: '/opt/py/bin/python'}), ['/opt/py/bin/python']);
    assert.deepEqual(pythonCandidates({}), ['python3', '/usr/bin/python3']);
  });

  test('no interpreter with torch: not available, with the reason per interpreter', async () => {
    const p = await probeTorch(['/nonexistent/python3']);
    assert.equal(p.available, false);
    assert.match(p.available ? '' : p.reason, /^no Python imports torch \(\/nonexistent\/python3: /);
  });

  test('bench/torch/shufflenetv2.py: state_dict names, shapes and order equal dtrain\'s; 352,042 / 2,488,874 parameters', {skip: noTorch}, async () => {
    const expected: Record<number, number> = {0.5: 352_042, 1.5: 2_488_874};
    for (const size of [0.5, 1.5] as ModelSize[]) {
      const spec = architecture(size);
      const torch = await torchStateDict(python, size);
      assert.deepEqual(
        torch.entries.map((e) => [e.name, e.shape]),
        stateEntries(spec).map((e) => [e.name, e.torchShape]),
        `size ${size}`,
      );
      assert.equal(torch.params, expected[size]);
      assert.equal(torch.params, countParams(spec));
    }
  });

  test('step timings: one thread, one time per timed step', {skip: noTorch}, async () => {
    const r = await torchStepTimes(python, 0.5, 2, 2, 1);
    assert.equal(r.threads, 1);
    assert.equal(r.times.length, 2);
    assert.ok(r.times.every((t) => t > 0));
  });

  test('gloo all_reduce: times per rank per payload, summarised like dtrain\'s', {skip: noTorch}, async () => {
    const r = await torchAllReduceTimes(python, 2, [4000, 40_000], 3, 1);
    assert.deepEqual(r.sizes.map((s) => [s.bytes, s.times.length, s.times[0].length]), [
      [4000, 2, 3],
      [40_000, 2, 3],
    ]);
    const row = summarise('plain', 2, 40_000, r.sizes[1].times);
    assert.ok(row.medianMs > 0 && row.busbwGBs === row.algbwGBs);
  });
});
