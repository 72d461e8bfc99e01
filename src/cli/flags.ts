import {Flags} from '@oclif/core';

import {DATA_SOURCES} from '../data/index.js';
import {BACKENDS, REQUIRABLE} from '../engine/backend.js';
import {PRECISIONS} from '../engine/precision.js';
import {type ModelSize, parseModelSize, SIZES} from '../model/architecture.js';

/** Flags shared by several commands, defined once. */
export const sizeFlag = Flags.string({
  char: 's',
  description: `ShuffleNetV2 width multiplier (${SIZES.join(', ')}); the seed trains 0.5.`,
  default: '0.5',
});

export const backendFlag = Flags.string({
  char: 'b',
  description: 'Compute backend: auto picks tensorflow on a GPU → webgpu on a hardware adapter → tensorflow on CPU → wasm → cpu, the first that loads (see `dtrain doctor`).',
  options: ['auto', ...BACKENDS],
  default: 'auto',
});

/** --precision: float32 (fast) or exact sums in the convolutions of wasm and webgpu (src/engine/precision.ts). */
export const precisionFlag = Flags.string({
  description: 'How convolutions sum: fast (the backend\'s own float32 kernels) or exact (wasm: float64 forward sums as the cpu backend always does, ~3–4× slower steps; webgpu: double-float sums in every convolution and BatchNorm moments, for verification, not speed). Every `model verify` fixture passes with exact; see docs/fidelity.md.',
  options: [...PRECISIONS],
  default: 'fast',
});

/** --metrics-port / --metrics-host: every long-running process serves /metrics (docs/observability.md has the port scheme). */
export const requireBackendFlag = Flags.string({
  description: 'Refuse to run unless the backend is this one (gpu: any hardware GPU backend); the error says what runs instead, why and the fix.',
  options: [...REQUIRABLE],
});

export const metricsPortFlag = (defaultPort: number, scheme: string) =>
  Flags.integer({description: `Port of this process's Prometheus /metrics endpoint (${scheme}; 0: any free port).`, default: defaultPort, min: 0, max: 65535});
export const metricsHostFlag = (fallback: string) => Flags.string({description: `Interface /metrics binds on (0.0.0.0 in containers; default ${fallback}).`});

export const dataDirFlag = Flags.string({description: 'CIFAR-10 directory (default $DTRAIN_DATA_DIR or ~/.cache/dtrain/cifar10).'});

export const checkpointFlags = {
  checkpoint: Flags.string({char: 'c', description: 'safetensors checkpoint: RUN_DIR/checkpoint-epochN.safetensors of `dtrain run`, or a state_dict exported from the seed model.', required: true}),
  // No default: the size comes from the checkpoint's metadata; only a file without it needs the flag.
  size: Flags.string({char: 's', description: `ShuffleNetV2 size (${SIZES.join(', ')}); default: the checkpoint's own (a PyTorch export without metadata needs it).`}),
};

export const testDataFlags = {
  data: Flags.string({description: 'Test set: cifar10 (needs `dtrain data download`) or synthetic (generated, the one `dtrain run --data synthetic` tests on).', options: [...DATA_SOURCES], default: 'cifar10'}),
  'data-dir': dataDirFlag,
};

export function optionalSize(value: string | undefined): ModelSize | undefined {
  return value === undefined ? undefined : parseModelSize(value);
}

/** How a command that talks to a coordinator proves itself (docs/operations.md, Security). */
export const coordinatorSecurityFlags = {
  'token-file': Flags.string({description: "File holding the cluster token (default $DTRAIN_TOKEN; for the cluster `dtrain cluster up` started, its own token)."}),
  'tls-ca': Flags.string({description: "PEM CA certificate of a coordinator that serves TLS (default $DTRAIN_TLS_CA; without it the channel is plain)."}),
};
