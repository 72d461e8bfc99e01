/**
 * Opening a checkpoint: a safetensors file holding the seed's `state_dict` in PyTorch names, either
 * written by `dtrain run` (`__metadata__` {format: 'dtrain-checkpoint', size, epoch, …}) or exported
 * from the seed's PyTorch model (maybe no metadata, maybe a "model."/"module." name prefix).
 * Every command that loads weights goes through here, so size and prefix rules live in one place.
 */
import {ExitCode, UserError} from '../cli/errors.js';
import {verifyRecordedWeights} from '../coordinator/checkpoint.js';
import {architecture, type ModelSize, parseModelSize, SIZES, stateEntries} from './architecture.js';
import {readSafetensors, type SafeTensor} from './safetensors.js';
import {ShuffleNetV2} from './shufflenetv2.js';

export interface CheckpointFile {
  path: string;
  size: ModelSize;
  /** Prepended to every PyTorch name in the file ("" for dtrain's own checkpoints). */
  prefix: string;
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
  /** The epoch that wrote it, when the metadata says. */
  epoch?: number;
}

/** The name prefix under which the file holds the model: DataParallel adds "module.", wrappers "model.". */
function findPrefix(path: string, tensors: Map<string, SafeTensor>): string {
  for (const name of tensors.keys()) {
    if (!name.endsWith('linear.weight')) continue;
    const prefix = name.slice(0, -'linear.weight'.length);
    if ((prefix === '' || prefix.endsWith('.')) && tensors.has(`${prefix}conv1.weight`)) return prefix;
  }
  throw new UserError(`${path} holds no ShuffleNetV2 weights (no conv1.weight / linear.weight tensors)`, {
    exitCode: ExitCode.data,
    suggestion: 'pass a checkpoint written by `dtrain run` or a state_dict saved from the seed model',
  });
}

/** The sizes whose every state-dict shape matches the file (normally exactly one). */
function sizesFitting(tensors: Map<string, SafeTensor>, prefix: string): ModelSize[] {
  return SIZES.filter((size) =>
    stateEntries(architecture(size)).every((e) => tensors.get(prefix + e.name)?.shape.join(',') === e.torchShape.join(',')),
  );
}

/**
 * Reads a checkpoint and settles its model size: the metadata's `size` when there is one (a
 * different `requested` size is an error), else `requested`, which a file without metadata needs.
 * Shapes are checked against the size here, so a mismatch is one clear line before any tensor work.
 */
export async function readCheckpoint(path: string, requested?: ModelSize): Promise<CheckpointFile> {
  await verifyRecordedWeights(path);
  const {tensors, metadata} = await readSafetensors(path);
  const prefix = findPrefix(path, tensors);
  const fitting = sizesFitting(tensors, prefix);
  const hint = fitting.length > 0 ? `its tensor shapes are those of size ${fitting.join(' or ')}` : 'its tensor shapes fit no ShuffleNetV2 size';
  const recorded = metadata.size !== undefined ? parseModelSize(metadata.size) : undefined;
  if (recorded !== undefined && requested !== undefined && recorded !== requested) {
    throw new UserError(`${path} is a ShuffleNetV2 size ${recorded} checkpoint (its metadata), not size ${requested}`, {
      exitCode: ExitCode.usage,
      suggestion: `drop --size (it defaults to the checkpoint's), or pass --size ${recorded}`,
    });
  }
  const size = recorded ?? requested;
  if (size === undefined) {
    throw new UserError(`${path} does not record its model size (no __metadata__ size, as in a PyTorch export)`, {
      exitCode: ExitCode.usage,
      suggestion: fitting.length > 0 ? `pass --size ${fitting[0]} (${hint})` : `pass --size; ${hint}`,
    });
  }
  if (!fitting.includes(size)) {
    throw new UserError(`${path} does not hold a ShuffleNetV2 size ${size}: ${hint}`, {
      exitCode: ExitCode.usage,
      suggestion: fitting.length > 0 ? `pass --size ${fitting[0]}` : 'is it a checkpoint of the seed model?',
    });
  }
  const epoch = metadata.epoch !== undefined && Number.isFinite(Number(metadata.epoch)) ? Number(metadata.epoch) : undefined;
  return {path, size, prefix, tensors, metadata, epoch};
}

/** The model in eval-ready form; the tfjs backend must be chosen first (variables live on it). */
export function modelFromCheckpoint(checkpoint: CheckpointFile): ShuffleNetV2 {
  return ShuffleNetV2.fromState(checkpoint.size, checkpoint.tensors, checkpoint.prefix);
}

/** "size 0.5, epoch 3" — how logs name a checkpoint. */
export function describeCheckpoint(checkpoint: CheckpointFile): string {
  return `ShuffleNetV2 size ${checkpoint.size}${checkpoint.epoch !== undefined ? `, epoch ${checkpoint.epoch}` : ''}`;
}
