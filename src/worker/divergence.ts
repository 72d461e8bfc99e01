/**
 * Divergence: a NaN or infinite loss. The trainers (single-process and replica) stop at the step
 * where it appears; the caller fails the run without writing a checkpoint, naming the last good one.
 */
export class NonFiniteLossError extends Error {
  constructor(
    /** 0-based. */
    readonly epoch: number,
    /** 1-based within the epoch. */
    readonly step: number,
    readonly steps: number,
    readonly loss: number,
  ) {
    super(`the loss is ${loss} at epoch ${epoch + 1}, step ${step}/${steps}`);
    this.name = 'NonFiniteLossError';
  }
}

export interface DivergenceContext {
  /** Newest checkpoint of this run (none yet: undefined). */
  lastGood?: string;
  /** The lr the epoch trained with. */
  lr: number;
  /** Whether the run can continue from lastGood (cluster runs: --resume). */
  resumable: boolean;
  /** Cluster runs: the rank that saw it. */
  rank?: number;
}

/** What a diverged run says: where it diverged, that nothing newer was saved, and what to change. */
function divergedMessage(where: string, c: DivergenceContext): string {
  const kept = c.lastGood ? `the last good checkpoint ${c.lastGood} is kept (nothing was overwritten)` : 'no checkpoint of this run was written yet';
  return `training diverged: ${where}; ${kept}; lower --lr (this epoch trained with ${c.lr}) and rerun${c.lastGood && c.resumable ? ' with --resume' : ''}`;
}

/** A NaN/Inf step loss in words. The global step assumes this run's steps per epoch throughout. */
export function nonFiniteLossMessage(report: {epoch: number; step: number; steps: number; loss: number}, c: DivergenceContext): string {
  const globalStep = report.epoch * report.steps + report.step;
  return divergedMessage(`the loss is ${report.loss} at epoch ${report.epoch + 1}, step ${report.step}/${report.steps} (global step ${globalStep})${c.rank === undefined ? '' : ` on rank ${c.rank}`}`, c);
}

/** Non-finite epoch losses (e.g. NaN weights after the last update of the epoch): its checkpoint must not be written. */
export function nonFiniteEpochMessage(epoch: number, trainLoss: number, testLoss: number, c: DivergenceContext): string | undefined {
  if (Number.isFinite(trainLoss) && Number.isFinite(testLoss)) return undefined;
  return divergedMessage(`after epoch ${epoch + 1} the train loss is ${trainLoss} and the test loss ${testLoss}`, c);
}
