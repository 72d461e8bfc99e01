/** The backend choice without a GPU: the automatic order as a pure function, --require-backend, adapter verdicts. */
import assert from 'node:assert/strict';
import {test} from 'node:test';

import {UserError} from '../../src/cli/errors.js';
import {autoChoose, autoStep, type BackendInfo, type BackendName, explainAuto, type Probe, requireBackend} from '../../src/engine/backend.js';
import {adapterReport, diagnoseNoAdapter, isSoftwareAdapter, mesaMajor} from '../../src/engine/webgpu.js';

/** Runs the automatic choice over a fixed machine, recording which backends were probed. */
async function choose(machine: Partial<Record<BackendName, Probe>>): Promise<{pick: BackendName | undefined; probed: BackendName[]}> {
  const probed: BackendName[] = [];
  const pick = await autoChoose(async (name) => {
    probed.push(name);
    return machine[name] ?? {ok: false};
  });
  return {pick, probed};
}

const GPU = {ok: true, hardware: true} as const;
const CPU = {ok: true, hardware: false} as const;
const NO = {ok: false} as const;

test('auto order: tensorflow GPU → webgpu hardware → tensorflow CPU → wasm → cpu', async () => {
  // tfjs-node-gpu on a CUDA GPU wins without touching Dawn.
  assert.deepEqual(await choose({tensorflow: GPU, webgpu: GPU, wasm: CPU, cpu: CPU}), {pick: 'tensorflow', probed: ['tensorflow']});
  // A hardware WebGPU adapter beats tfjs-node on the CPU.
  assert.deepEqual(await choose({tensorflow: CPU, webgpu: GPU, wasm: CPU, cpu: CPU}), {pick: 'webgpu', probed: ['tensorflow', 'webgpu']});
  assert.deepEqual(await choose({tensorflow: NO, webgpu: GPU, wasm: CPU, cpu: CPU}), {pick: 'webgpu', probed: ['tensorflow', 'webgpu']});
  // tfjs-node on the CPU beats wasm, which is then never initialised.
  assert.deepEqual(await choose({tensorflow: CPU, webgpu: NO, wasm: CPU, cpu: CPU}), {pick: 'tensorflow', probed: ['tensorflow', 'webgpu']});
  // This workplace: no tfjs-node, lavapipe only → wasm.
  assert.deepEqual(await choose({tensorflow: NO, webgpu: CPU, wasm: CPU, cpu: CPU}), {pick: 'wasm', probed: ['tensorflow', 'webgpu', 'wasm']});
  assert.deepEqual(await choose({tensorflow: NO, webgpu: NO, wasm: NO, cpu: CPU}), {pick: 'cpu', probed: ['tensorflow', 'webgpu', 'wasm', 'cpu']});
  assert.deepEqual(await choose({}), {pick: undefined, probed: ['tensorflow', 'webgpu', 'wasm', 'cpu']});
});

test('auto never picks a software WebGPU adapter, even when nothing else loads', async () => {
  for (const tensorflow of [NO, CPU]) {
    for (const wasm of [NO, CPU]) {
      for (const cpu of [NO, CPU]) {
        const {pick} = await choose({tensorflow, webgpu: CPU, wasm, cpu});
        assert.notEqual(pick, 'webgpu');
      }
    }
  }
  assert.deepEqual(autoStep({tensorflow: NO, webgpu: CPU, wasm: NO, cpu: NO}), {none: true});
  assert.match(explainAuto({tensorflow: NO, webgpu: CPU, wasm: CPU}, 'wasm'), /software adapter.*never chosen automatically/);
});

function info(name: BackendName, hardware: boolean): BackendInfo {
  return {name, device: hardware ? 'GPU (WebGPU on NVIDIA H200)' : 'CPU (WebAssembly SIMD, 1 thread)', deviceName: hardware ? 'NVIDIA H200' : 'CPU', hardware, tried: [{name: 'webgpu', ok: false, why: 'no WebGPU adapter', fix: 'install a driver'}, {name, ok: true}]};
}

test('--require-backend refuses a mismatch with a UserError that says why and what to do', () => {
  assert.doesNotThrow(() => requireBackend(info('wasm', false), undefined));
  assert.doesNotThrow(() => requireBackend(info('wasm', false), 'auto'));
  assert.doesNotThrow(() => requireBackend(info('wasm', false), 'wasm'));
  assert.doesNotThrow(() => requireBackend(info('webgpu', true), 'gpu'));
  assert.throws(
    () => requireBackend(info('wasm', false), 'webgpu'),
    (error: unknown) => error instanceof UserError && /--require-backend webgpu, but this process runs backend wasm/.test(error.message) && /no WebGPU adapter/.test(error.message) && error.suggestion === 'install a driver',
  );
  assert.throws(() => requireBackend(info('webgpu', false), 'gpu'), UserError);
  assert.throws(() => requireBackend(info('wasm', false), 'cuda'), (error: unknown) => error instanceof UserError && error.exitCode === 2);
});

test('adapters: lavapipe, llvmpipe and SwiftShader are software; a real GPU is hardware', () => {
  const lavapipe = adapterReport({vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)', isFallbackAdapter: true});
  assert.equal(lavapipe.hardware, false);
  assert.equal(lavapipe.name, 'llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)');
  assert.equal(isSoftwareAdapter({description: 'SwiftShader Device (Subzero)'}), true);
  assert.equal(isSoftwareAdapter({name: 'llvmpipe (LLVM 15.0.6, 256 bits)', fallback: false}), true);
  const h200 = adapterReport({vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200'});
  assert.deepEqual([h200.hardware, h200.name, h200.fallback], [true, 'NVIDIA H200', false]);
});

test('no adapter: the diagnosis names the cause and the fix', () => {
  assert.equal(mesaMajor('25.0.7-2~bpo12+1'), 25);
  assert.equal(mesaMajor('22.3.6-1+deb12u1'), 22);
  assert.equal(mesaMajor(undefined), undefined);
  const old = diagnoseNoAdapter({loader: true, icds: ['lvp_icd.x86_64.json', 'radeon_icd.x86_64.json'], mesaVersion: '22.3.6-1+deb12u1'}, 'linux');
  assert.equal(old.problem, 'mesa-too-old');
  assert.match(old.fix, /bookworm-backports/);
  assert.equal(diagnoseNoAdapter({loader: false, icds: []}, 'linux').problem, 'no-loader');
  assert.equal(diagnoseNoAdapter({loader: true, icds: []}, 'linux').problem, 'no-adapter');
  assert.match(diagnoseNoAdapter({loader: true, icds: ['nvidia_icd.json']}, 'linux').fix, /NVIDIA_DRIVER_CAPABILITIES.*graphics/);
});
