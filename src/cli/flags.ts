import {Flags} from '@oclif/core';

import {BACKENDS} from '../engine/backend.js';
import {SIZES} from '../model/architecture.js';

/** Flags shared by several commands, defined once. */
export const sizeFlag = Flags.string({
  char: 's',
  description: `ShuffleNetV2 width multiplier (${SIZES.join(', ')}); the seed trains 0.5.`,
  default: '0.5',
});

export const backendFlag = Flags.string({
  char: 'b',
  description: 'Compute backend: auto picks tensorflow (tfjs-node-gpu) → wasm → cpu, the first that loads.',
  options: ['auto', ...BACKENDS],
  default: 'auto',
});
