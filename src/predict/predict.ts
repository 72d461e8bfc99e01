/**
 * `dtrain predict` on user images: every input is loaded on its own (a failure is recorded for that
 * input and the others go on), then all that loaded are classified together.
 */
import {CIFAR10_CLASSES} from '../data/index.js';
import type {ShuffleNetV2} from '../model/shufflenetv2.js';
import {byClassName, classProbabilities, topClass} from './classify.js';
import {type ImageSourceOptions, imagesToDataset, loadImage} from './images.js';

export interface ImagePrediction {
  input: string;
  class: string;
  /** class name → softmax probability, in class order. */
  probabilities: Record<string, number>;
}

export interface ImageFailure {
  input: string;
  /** One line: what is wrong with this input. */
  error: string;
  /** The exit code this failure alone would give (4 network, 5 data). */
  exitCode: number;
}

export type PredictOutcome = ImagePrediction | ImageFailure;

export function isFailure(outcome: PredictOutcome): outcome is ImageFailure {
  return 'error' in outcome;
}

export interface PredictImagesOptions extends ImageSourceOptions {
  /** Called as soon as an input fails, so the user sees it while the rest load. */
  onFailure?(failure: ImageFailure): void;
}

/** Outcomes in the order of `inputs`. */
export async function predictImages(model: ShuffleNetV2, inputs: string[], options: PredictImagesOptions): Promise<PredictOutcome[]> {
  const loaded: Array<{slot: number; image: Uint8Array}> = [];
  const outcomes: PredictOutcome[] = new Array(inputs.length);
  for (const [slot, input] of inputs.entries()) {
    try {
      loaded.push({slot, image: await loadImage(input, options)});
    } catch (error) {
      const failure = {input, error: (error as Error).message, exitCode: (error as {exitCode?: number}).exitCode ?? 1};
      outcomes[slot] = failure;
      options.onFailure?.(failure);
    }
  }
  const ds = imagesToDataset(loaded.map((l) => l.image));
  const rows = await classProbabilities(model, ds, loaded.map((_, i) => i));
  loaded.forEach(({slot}, i) => {
    outcomes[slot] = {input: inputs[slot], class: CIFAR10_CLASSES[topClass(rows[i])], probabilities: byClassName(rows[i])};
  });
  return outcomes;
}

/** One exit code for a set of failures: theirs when they agree, else the generic 1. */
export function failureExitCode(failures: ImageFailure[]): number {
  const codes = new Set(failures.map((f) => f.exitCode));
  return codes.size === 1 ? [...codes][0] : 1;
}
