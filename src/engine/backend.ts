import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';

import {UserError} from '../cli/errors.js';
import {registerCpuPrecisionKernels} from './cpu/register.js';
import {registerWasmTrainingKernels} from './wasm/register.js';

export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

/** What was chosen and why: reported at start, at registration and by `dtrain doctor`. */
export interface BackendInfo {
  name: BackendName;
  /** The device the kernels run on, in words ("CPU (wasm, SIMD, 1 thread)", "GPU (CUDA)", ...). */
  device: string;
  hardware: boolean;
  /** Each backend tried, in order, with why it was not taken. */
  tried: Array<{name: BackendName; ok: boolean; why?: string}>;
}

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

async function tryBackend(name: BackendName): Promise<{device: string; hardware: boolean}> {
  switch (name) {
    case 'tensorflow': {
      const {gpu} = await loadTensorflow();
      return {device: gpu ? 'GPU (CUDA, libtensorflow)' : 'CPU (libtensorflow)', hardware: gpu};
    }
    case 'wasm': {
      registerWasmTrainingKernels();
      if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
      await tf.ready();
      const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
      const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
      return {device: `CPU (WebAssembly${simd ? ' SIMD' : ''}, ${threads ? 'multi-threaded' : '1 thread'})`, hardware: false};
    }
    case 'cpu': {
      registerCpuPrecisionKernels();
      if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
      return {device: 'CPU (pure JavaScript)', hardware: false};
    }
  }
}

/**
 * Select the compute backend. `auto` tries tensorflow (GPU first) → wasm → cpu and takes the first
 * that loads; a named backend must load or this throws a UserError saying why.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  // Production mode: no tfjs console banners ("install tfjs-node") and no debug-only checks.
  tf.enableProdMode();
  const order: BackendName[] = choice === 'auto' ? [...BACKENDS] : [choice];
  const tried: BackendInfo['tried'] = [];
  for (const name of order) {
    try {
      const {device, hardware} = await tryBackend(name);
      tried.push({name, ok: true});
      return {name, device, hardware, tried};
    } catch (error) {
      tried.push({name, ok: false, why: (error as Error).message});
    }
  }
  const why = tried.map((t) => `${t.name}: ${t.why}`).join('; ');
  throw new UserError(`backend ${choice} is not available (${why})`, {
    suggestion: choice === 'auto' ? 'reinstall dependencies with `npm ci`' : 'use --backend auto to take the best backend that loads',
  });
}

export function describeBackend(info: BackendInfo): string {
  return `backend ${info.name} on ${info.device}`;
}
