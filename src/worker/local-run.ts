import {appendFile, mkdir, writeFile} from 'node:fs/promises';
import {join} from 'node:path';

import {UserError} from '../cli/errors.js';
import {CIFAR10_CLASSES, type DataSource, resolveDataset} from '../data/index.js';
import {type BackendChoice, type BackendInfo, initBackend, requireBackend} from '../engine/backend.js';
import {applyPrecision, type Precision} from '../engine/precision.js';
import type {ModelSize} from '../model/architecture.js';
import {serializeSafetensors} from '../model/safetensors.js';
import {ShuffleNetV2} from '../model/shufflenetv2.js';
import {createScheduler} from '../optim/schedulers.js';
import {SGD} from '../optim/sgd.js';
import {NonFiniteLossError, nonFiniteEpochMessage, nonFiniteLossMessage} from './divergence.js';
import {type EpochResult, type EvalResult, type StepProgress, Trainer} from './trainer.js';

export interface LocalRunOptions {
  size: ModelSize;
  epochs: number;
  batchSize: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  scheduler: string;
  data: DataSource;
  dataDir?: string;
  trainLimit?: number;
  testLimit?: number;
  seed: number;
  backend: BackendChoice;
  /** How wasm sums in forward convolutions (`--precision`, default fast); a local cluster passes it to its workers. */
  precision?: Precision;
  /** Refuse to train on any other backend (`--require-backend`); a local cluster passes it to its workers. */
  requireBackend?: string;
  runDir: string;
}

export interface EpochRecord extends EpochResult {
  testLoss: number;
  testAccuracy: number;
  perClass: Record<string, number>;
  checkpoint: string;
}

export interface LocalRunEvents {
  onStart?(info: {backend: BackendInfo; precision: string; trainCount: number; testCount: number; source: string}): void;
  onStep?(progress: StepProgress): void;
  onEpoch?(record: EpochRecord): void;
}

export interface LocalRunResult {
  backend: string;
  device: string;
  size: ModelSize;
  runDir: string;
  epochs: EpochRecord[];
  final: EvalResult & {perClassByName: Record<string, number>};
}

/**
 * One process, one replica: the seed's recipe (SGD, per-epoch scheduler on the train loss, eval,
 * checkpoint) as a library. Writes history.jsonl (one line per epoch) and a safetensors checkpoint
 * per epoch, with PyTorch names, into runDir.
 */
export async function runLocal(options: LocalRunOptions, events: LocalRunEvents = {}): Promise<LocalRunResult> {
  const {train, test, source} = await resolveDataset({data: options.data, dir: options.dataDir, trainLimit: options.trainLimit, testLimit: options.testLimit});
  const backend = await initBackend(options.backend);
  requireBackend(backend, options.requireBackend);
  const precision = applyPrecision(backend.name, options.precision ?? 'fast');
  events.onStart?.({backend, precision, trainCount: train.count, testCount: test.count, source});
  await mkdir(options.runDir, {recursive: true});
  const model = ShuffleNetV2.create(options.size, options.seed);
  const optimizer = new SGD({lr: options.lr, momentum: options.momentum, weightDecay: options.weightDecay});
  const scheduler = createScheduler(options.scheduler, options.lr, options.epochs);
  const trainer = new Trainer(model, optimizer, {batchSize: options.batchSize, seed: options.seed});
  const history: EpochRecord[] = [];
  let final: EvalResult | undefined;
  try {
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      const lastGood = history.at(-1)?.checkpoint;
      const result = await trainer.trainEpoch(train, epoch, events.onStep).catch((err: unknown) => {
        throw err instanceof NonFiniteLossError ? new UserError(nonFiniteLossMessage(err, {lastGood, lr: optimizer.lr, resumable: false})) : err;
      });
      final = await trainer.evaluate(test);
      const diverged = nonFiniteEpochMessage(epoch, result.trainLoss, final.loss, {lastGood, lr: optimizer.lr, resumable: false});
      if (diverged) throw new UserError(diverged);
      optimizer.lr = scheduler.step(epoch, result.trainLoss);
      const checkpoint = join(options.runDir, `checkpoint-epoch${epoch + 1}.safetensors`);
      const metadata = {format: 'dtrain-checkpoint', size: String(options.size), epoch: String(epoch + 1), nextLr: String(optimizer.lr), seed: String(options.seed), backend: backend.name};
      await writeFile(checkpoint, serializeSafetensors(await model.stateDict(), metadata));
      const record: EpochRecord = {
        ...result,
        testLoss: final.loss,
        testAccuracy: final.accuracy,
        perClass: Object.fromEntries(CIFAR10_CLASSES.map((name, c) => [name, final!.perClass[c]])),
        checkpoint,
      };
      await appendFile(join(options.runDir, 'history.jsonl'), JSON.stringify(record) + '\n');
      history.push(record);
      events.onEpoch?.(record);
    }
  } finally {
    model.dispose();
    optimizer.dispose();
  }
  return {
    backend: backend.name,
    device: backend.device,
    size: options.size,
    runDir: options.runDir,
    epochs: history,
    final: {...final!, perClassByName: Object.fromEntries(CIFAR10_CLASSES.map((name, c) => [name, final!.perClass[c]]))},
  };
}
