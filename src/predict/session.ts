/** The model a user command works with: checkpoint read and checked first, then the backend, then the weights. */
import {type BackendChoice, type BackendInfo, initBackend} from '../engine/backend.js';
import type {ModelSize} from '../model/architecture.js';
import {type CheckpointFile, modelFromCheckpoint, readCheckpoint} from '../model/checkpoint.js';
import type {ShuffleNetV2} from '../model/shufflenetv2.js';

export interface ModelSessionOptions {
  checkpoint: string;
  /** Needed only for a checkpoint without size metadata; must agree with the metadata otherwise. */
  size?: ModelSize;
  backend: BackendChoice;
}

export interface ModelSession {
  model: ShuffleNetV2;
  checkpoint: CheckpointFile;
  backend: BackendInfo;
}

export async function openModel(options: ModelSessionOptions): Promise<ModelSession> {
  // The file first: a wrong path or size fails in milliseconds, before the backend loads.
  const checkpoint = await readCheckpoint(options.checkpoint, options.size);
  const backend = await initBackend(options.backend);
  return {model: modelFromCheckpoint(checkpoint), checkpoint, backend};
}
