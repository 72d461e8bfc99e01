/** `dtrain eval`: a checkpoint on a test set, with the test transform and eval-mode BatchNorm, as `dtrain run` evaluates. */
import {CIFAR10_CLASSES, type DataSource, resolveDataset} from '../data/index.js';
import type {BackendChoice} from '../engine/backend.js';
import type {ModelSize} from '../model/architecture.js';
import {SEED_SGD, SGD} from '../optim/sgd.js';
import {Trainer} from '../worker/trainer.js';
import {type ModelSession, openModel} from './session.js';

export interface EvaluateOptions {
  checkpoint: string;
  size?: ModelSize;
  data: DataSource;
  dataDir?: string;
  testLimit?: number;
  backend: BackendChoice;
  /** Images per forward pass; results do not depend on it (eval-mode BatchNorm). */
  batchSize?: number;
  /** Called once model, backend and data are ready (for a progress line). */
  onReady?(info: ModelSession & {source: string; count: number}): void;
}

export interface EvaluateResult {
  checkpoint: string;
  size: ModelSize;
  epoch?: number;
  backend: string;
  device: string;
  source: string;
  count: number;
  correct: number;
  accuracy: number;
  loss: number;
  /** class name → accuracy (null in JSON for a class without test images). */
  perClass: Record<string, number>;
}

export async function evaluateCheckpoint(options: EvaluateOptions): Promise<EvaluateResult> {
  const session = await openModel(options);
  const {model, checkpoint, backend} = session;
  try {
    // Only the test split is needed; the smallest train split keeps cifar10 reading and synthetic generation cheap.
    const {test, source} = await resolveDataset({data: options.data, dir: options.dataDir, testLimit: options.testLimit, trainLimit: 1});
    options.onReady?.({...session, source, count: test.count});
    // Trainer.evaluate is the evaluation `dtrain run` reports; its optimizer is never stepped here.
    const trainer = new Trainer(model, new SGD(SEED_SGD), {batchSize: options.batchSize ?? 100, seed: 0});
    const r = await trainer.evaluate(test);
    return {
      checkpoint: checkpoint.path,
      size: checkpoint.size,
      epoch: checkpoint.epoch,
      backend: backend.name,
      device: backend.device,
      source,
      count: r.count,
      correct: r.correct,
      accuracy: r.accuracy,
      loss: r.loss,
      perClass: Object.fromEntries(CIFAR10_CLASSES.map((name, c) => [name, r.perClass[c]])),
    };
  } finally {
    model.dispose();
  }
}
