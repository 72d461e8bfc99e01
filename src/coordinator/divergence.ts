import type {NonFiniteLoss} from '../gen/dtrain.js';

/** What a diverged job says: where it diverged, that nothing newer was saved, and what to change. */
function divergedError(where: string, lastGood: string | undefined, lr: number): Error {
  const kept = lastGood ? `the last good checkpoint ${lastGood} is kept (nothing was overwritten)` : 'no checkpoint of this job was written yet';
  return new Error(`training diverged: ${where}; ${kept}; lower --lr (this epoch trained with ${lr}) and rerun${lastGood ? ' with --resume' : ''}`);
}

/** A worker's report of a NaN/Inf step loss. The global step assumes this job's steps per epoch throughout. */
export function nonFiniteLossError(report: NonFiniteLoss, rank: number, lastGood: string | undefined, lr: number): Error {
  const globalStep = report.epoch * report.steps + report.step;
  return divergedError(`the loss is ${report.loss} at epoch ${report.epoch + 1}, step ${report.step}/${report.steps} (global step ${globalStep}) on rank ${rank}`, lastGood, lr);
}

/** Non-finite epoch losses (e.g. NaN weights after the last update of the epoch): the checkpoint must not be written. */
export function nonFiniteEpochError(epoch: number, trainLoss: number, testLoss: number, lastGood: string | undefined, lr: number): Error | undefined {
  if (Number.isFinite(trainLoss) && Number.isFinite(testLoss)) return undefined;
  return divergedError(`after epoch ${epoch + 1} the train loss is ${trainLoss} and the test loss ${testLoss}`, lastGood, lr);
}
