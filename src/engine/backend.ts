import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import {UserError} from '../cli/errors.js';
import {registerCpuPrecisionKernels} from './cpu/register.js';
import {registerWasmTrainingKernels} from './wasm/register.js';
import {type GpuAdapterReport, initWebGpuBackend, probeWebGpu, releaseWebGpu, WebGpuUnavailable} from './webgpu.js';

export const BACKENDS = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

/** One backend tried while choosing, with why it was not taken and what would make it work. */
export interface BackendAttempt {
  name: BackendName;
  /** It loaded (it may still have been passed over: see `why`). */
  ok: boolean;
  why?: string;
  /** What to do so that it loads (or is chosen). */
  fix?: string;
  /** The device it found, when it loaded. */
  device?: string;
  hardware?: boolean;
}

/** What was chosen and why: reported at start, at registration and by `dtrain doctor`. */
export interface BackendInfo {
  name: BackendName;
  /** The device the kernels run on, in words ("CPU (wasm, SIMD, 1 thread)", "GPU (CUDA)", ...). */
  device: string;
  /** Whether the kernels run on real GPU hardware (false for CPUs and software Vulkan such as lavapipe). */
  hardware: boolean;
  /** Each backend tried, in order, with why it was not taken. */
  tried: BackendAttempt[];
  /** The adapter/device name alone ("NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)", "CPU"). */
  deviceName: string;
  /** webgpu only: what the adapter says about itself. */
  adapter?: GpuAdapterReport;
}

const TFJS_NODE_FIX =
  '`npm install @tensorflow/tfjs-node-gpu` where its install can download libtensorflow 2.9.1 (needs internet, CUDA 11.2 and cuDNN 8.1 for the GPU); or use --backend webgpu (docs/gpu.md)';

/** tfjs-node(-gpu) is optional (its install downloads libtensorflow): load it only if present. */
async function loadTensorflow(): Promise<{gpu: boolean}> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      const mod = (await import(pkg)) as {version?: unknown};
      void mod;
      await tf.setBackend('tensorflow');
      const binding = (tf.backend() as unknown as {binding?: {isUsingGpuDevice?: () => boolean}}).binding;
      return {gpu: pkg.endsWith('-gpu') && Boolean(binding?.isUsingGpuDevice?.())};
    } catch (error) {
      const code = (error as {code?: string}).code;
      if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw error;
    }
  }
  throw new Error('neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed (their install downloads libtensorflow; see README)');
}

interface Loaded {
  device: string;
  deviceName: string;
  hardware: boolean;
  adapter?: GpuAdapterReport;
}

function webgpuDevice(adapter: GpuAdapterReport): Loaded {
  const kind = adapter.hardware ? 'GPU' : 'software GPU';
  return {device: `${kind} (WebGPU on ${adapter.name})`, deviceName: adapter.name, hardware: adapter.hardware, adapter};
}

async function tryBackend(name: BackendName): Promise<Loaded> {
  switch (name) {
    case 'tensorflow': {
      const {gpu} = await loadTensorflow();
      return {device: gpu ? 'GPU (CUDA, libtensorflow)' : 'CPU (libtensorflow)', deviceName: gpu ? 'CUDA GPU' : 'CPU', hardware: gpu};
    }
    case 'webgpu':
      return webgpuDevice(await initWebGpuBackend());
    case 'wasm': {
      registerWasmTrainingKernels();
      if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
      await tf.ready();
      const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
      const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
      return {device: `CPU (WebAssembly${simd ? ' SIMD' : ''}, ${threads ? 'multi-threaded' : '1 thread'})`, deviceName: 'CPU', hardware: false};
    }
    case 'cpu': {
      registerCpuPrecisionKernels();
      if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
      return {device: 'CPU (pure JavaScript)', deviceName: 'CPU', hardware: false};
    }
  }
}

function fixFor(name: BackendName, error: unknown): string | undefined {
  if (error instanceof WebGpuUnavailable) return error.fix;
  if (name === 'tensorflow') return TFJS_NODE_FIX;
  if (name === 'wasm' || name === 'cpu') return 'reinstall dependencies with `npm ci`';
  return undefined;
}

/** What a probe of one backend found, for the automatic choice. */
export type Probe = {ok: true; hardware: boolean} | {ok: false};

/** The next step of the automatic choice: probe a backend, take one, or give up. */
export type AutoStep = {probe: BackendName} | {pick: BackendName} | {none: true};

/**
 * The automatic order as a pure function of what has been probed so far: tensorflow with a GPU →
 * webgpu with a hardware adapter → tensorflow on CPU → wasm → cpu. A software WebGPU adapter
 * (lavapipe, SwiftShader) is never picked here, only by `--backend webgpu`. Backends are probed
 * lazily, in this order, so a machine with tfjs-node-gpu on a GPU never touches Dawn.
 */
export function autoStep(probes: Partial<Record<BackendName, Probe>>): AutoStep {
  const tensorflow = probes.tensorflow;
  if (!tensorflow) return {probe: 'tensorflow'};
  if (tensorflow.ok && tensorflow.hardware) return {pick: 'tensorflow'};
  const webgpu = probes.webgpu;
  if (!webgpu) return {probe: 'webgpu'};
  if (webgpu.ok && webgpu.hardware) return {pick: 'webgpu'};
  if (tensorflow.ok) return {pick: 'tensorflow'};
  for (const name of ['wasm', 'cpu'] as const) {
    const probe = probes[name];
    if (!probe) return {probe: name};
    if (probe.ok) return {pick: name};
  }
  return {none: true};
}

/** Runs autoStep to its end; `probe` says what one backend gives. Exported for tests. */
export async function autoChoose(probe: (name: BackendName) => Promise<Probe>): Promise<BackendName | undefined> {
  const probes: Partial<Record<BackendName, Probe>> = {};
  for (;;) {
    const step = autoStep(probes);
    if ('pick' in step) return step.pick;
    if ('none' in step) return undefined;
    probes[step.probe] = await probe(step.probe);
  }
}

/**
 * Select the compute backend. `auto` follows autoStep (tensorflow GPU → webgpu hardware →
 * tensorflow CPU → wasm → cpu) and takes the first that fits; a named backend must load or this
 * throws a UserError saying why and what to do.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  // Production mode: no tfjs console banners ("install tfjs-node") and no debug-only checks.
  tf.enableProdMode();
  const tried: BackendAttempt[] = [];
  const loaded = new Map<BackendName, Loaded>();
  const attempt = async (name: BackendName): Promise<Probe> => {
    try {
      // webgpu is probed (adapter only) before tfjs is put on it: a software adapter is not taken.
      const result = name === 'webgpu' && choice === 'auto' ? webgpuDevice(await probeWebGpu()) : await tryBackend(name);
      loaded.set(name, result);
      const entry: BackendAttempt = {name, ok: true, device: result.device, hardware: result.hardware};
      if (choice === 'auto' && name === 'webgpu' && !result.hardware) {
        entry.why = `${result.deviceName} is a software adapter: never chosen automatically`;
        entry.fix = 'use --backend webgpu to run on it anyway (slow; meant for correctness checks)';
      }
      if (choice === 'auto' && name === 'tensorflow' && !result.hardware) entry.why = 'tfjs-node found no GPU (CPU only)';
      tried.push(entry);
      return {ok: true, hardware: result.hardware};
    } catch (error) {
      tried.push({name, ok: false, why: (error as Error).message, fix: fixFor(name, error)});
      return {ok: false};
    }
  };

  let name: BackendName | undefined;
  if (choice === 'auto') {
    name = await autoChoose(attempt);
  } else {
    name = (await attempt(choice)).ok ? choice : undefined;
  }
  if (name !== 'webgpu') releaseWebGpu();
  if (name === undefined) {
    const why = tried.map((t) => `${t.name}: ${t.why}`).join('; ');
    const fix = tried.find((t) => t.fix)?.fix;
    throw new UserError(`backend ${choice} is not available (${why})`, {
      suggestion: choice === 'auto' ? 'reinstall dependencies with `npm ci`' : `${fix ? fix + '; or ' : ''}use --backend auto to take the best backend that loads`,
    });
  }
  let result = loaded.get(name)!;
  try {
    if (name === 'webgpu' && choice === 'auto') result = webgpuDevice(await initWebGpuBackend());
    else if (tf.getBackend() !== name) await tf.setBackend(name);
  } catch (error) {
    throw new UserError(`backend ${name} was found but did not initialise: ${(error as Error).message}`, {suggestion: 'run `dtrain doctor`', cause: error});
  }
  // Passed-over entries of auto keep their `why`; the chosen one has none.
  const chosen = tried.find((t) => t.name === name);
  if (chosen) delete chosen.why;
  return {name, device: result.device, hardware: result.hardware, tried, deviceName: result.deviceName, adapter: result.adapter};
}

/** One backend as `dtrain doctor` reports it: loaded or not, on what, why not, and the fix. */
export interface BackendReport extends BackendAttempt {
  deviceName?: string;
  adapter?: GpuAdapterReport;
  /** ms to initialise (and, for webgpu, to run one op on the device). */
  ms?: number;
}

/**
 * Tries every backend (not just the one auto would take) for `dtrain doctor`, and says which one
 * auto would pick and why. Leaves tfjs on the last backend tried and Dawn released.
 */
export async function probeAllBackends(): Promise<{backends: BackendReport[]; auto: BackendName | undefined; autoWhy: string}> {
  tf.enableProdMode();
  const backends: BackendReport[] = [];
  for (const name of BACKENDS) {
    const t0 = performance.now();
    try {
      const result = await tryBackend(name);
      // One op through the device proves the backend computes, not just that it initialised.
      const sum = tf.tidy(() => tf.sum(tf.add(tf.ones([64]), tf.ones([64]))));
      const value = (await sum.data())[0];
      sum.dispose();
      if (value !== 128) throw new Error(`a test op gave ${value} instead of 128`);
      backends.push({name, ok: true, device: result.device, hardware: result.hardware, deviceName: result.deviceName, adapter: result.adapter, ms: performance.now() - t0});
    } catch (error) {
      backends.push({name, ok: false, why: (error as Error).message, fix: fixFor(name, error), ms: performance.now() - t0});
    }
  }
  releaseWebGpu();
  const probes = Object.fromEntries(backends.map((b) => [b.name, b.ok ? {ok: true, hardware: Boolean(b.hardware)} : {ok: false}])) as Record<BackendName, Probe>;
  const auto = await autoChoose(async (name) => probes[name]);
  return {backends, auto, autoWhy: explainAuto(probes, auto)};
}

/** Why auto takes what it takes, in one sentence. */
export function explainAuto(probes: Partial<Record<BackendName, Probe>>, auto: BackendName | undefined): string {
  const reasons: string[] = [];
  const tf_ = probes.tensorflow;
  const wg = probes.webgpu;
  if (auto === 'tensorflow' && tf_?.ok && tf_.hardware) return 'tfjs-node-gpu runs on a CUDA GPU (first in the order)';
  reasons.push(!tf_?.ok ? 'tfjs-node(-gpu) is not installed' : tf_.hardware ? 'tfjs-node-gpu sees a GPU' : 'tfjs-node sees no GPU');
  if (auto === 'webgpu') return `${reasons[0]}; webgpu has a hardware adapter`;
  reasons.push(!wg ? 'webgpu was not probed' : !wg.ok ? 'webgpu has no adapter' : wg.hardware ? 'webgpu has a hardware adapter' : 'webgpu has only a software adapter (never chosen automatically)');
  if (auto === 'tensorflow') return `${reasons.join('; ')}; tfjs-node on CPU comes next`;
  if (auto === 'wasm') return `${reasons.join('; ')}; so WebAssembly on the CPU`;
  if (auto === 'cpu') return `${reasons.join('; ')}; wasm does not load; so pure-JS cpu`;
  return `${reasons.join('; ')}; and neither wasm nor cpu loads`;
}

export function describeBackend(info: BackendInfo): string {
  return `backend ${info.name} on ${info.device}`;
}

/** Values of `--require-backend`: a backend name, or `gpu` for any backend on GPU hardware. */
export const REQUIRABLE = [...BACKENDS, 'gpu'] as const;
export type BackendRequirement = (typeof REQUIRABLE)[number];

/**
 * `--require-backend NAME`: throws a UserError when the backend in use is not NAME (or, for `gpu`,
 * does not run on GPU hardware), so that a worker never trains silently on the wrong device.
 */
export function requireBackend(info: BackendInfo, required: string | undefined): void {
  if (required === undefined || required === '' || required === 'auto') return;
  if (!(REQUIRABLE as readonly string[]).includes(required)) {
    throw new UserError(`--require-backend ${required}: not a backend (${REQUIRABLE.join(', ')})`, {exitCode: 2});
  }
  const ok = required === 'gpu' ? info.hardware : info.name === required;
  if (ok) return;
  const why = info.tried
    .filter((t) => t.name === required || (required === 'gpu' && !t.hardware))
    .map((t) => `${t.name}: ${t.why ?? (t.ok ? `loaded on ${t.device}` : 'not tried')}`)
    .join('; ');
  const fix = info.tried.find((t) => (t.name === required || required === 'gpu') && t.fix)?.fix;
  throw new UserError(`--require-backend ${required}, but this process runs ${describeBackend(info)}${why ? ` (${why})` : ''}`, {
    suggestion: fix ?? 'run `dtrain doctor` to see which backends this machine has and why',
  });
}
