import {ExitCode, UserError} from '../cli/errors.js';

/** A learning-rate schedule stepped once per epoch with that epoch's train loss. */
export interface LrScheduler {
  readonly name: SchedulerName;
  /** LR for the next epoch, given the epoch just finished (0-based) and its train loss. */
  step(epoch: number, trainLoss: number): number;
  readonly lr: number;
  state(): Record<string, number>;
}

export const SCHEDULERS = ['plateau', 'multistep', 'cosine', 'constant'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

/**
 * torch.optim.lr_scheduler.ReduceLROnPlateau(mode='min', threshold=1e-4 'rel', cooldown=0, eps=1e-8):
 * after more than `patience` epochs without a relative improvement, lr ← max(lr·factor, minLr).
 * The seed: factor 0.94, patience 1, min_lr 1e-6, on the train loss.
 */
export class ReduceLROnPlateau implements LrScheduler {
  readonly name = 'plateau';
  private best = Number.POSITIVE_INFINITY;
  private badEpochs = 0;

  constructor(
    public lr: number,
    private readonly factor = 0.94,
    private readonly patience = 1,
    private readonly minLr = 1e-6,
    private readonly threshold = 1e-4,
  ) {}

  step(_epoch: number, trainLoss: number): number {
    if (trainLoss < this.best * (1 - this.threshold)) {
      this.best = trainLoss;
      this.badEpochs = 0;
    } else {
      this.badEpochs++;
    }
    if (this.badEpochs > this.patience) {
      const next = Math.max(this.lr * this.factor, this.minLr);
      if (this.lr - next > 1e-8) this.lr = next;
      this.badEpochs = 0;
    }
    return this.lr;
  }

  state(): Record<string, number> {
    return {lr: this.lr, best: this.best, badEpochs: this.badEpochs};
  }
}

/** MultiStepLR: lr × gamma at each milestone epoch (default milestones at 50% and 75% of the run). */
export class MultiStepLR implements LrScheduler {
  readonly name = 'multistep';
  lr: number;

  constructor(
    private readonly baseLr: number,
    private readonly milestones: number[],
    private readonly gamma = 0.1,
  ) {
    this.lr = baseLr;
  }

  step(epoch: number): number {
    const passed = this.milestones.filter((m) => epoch + 1 >= m).length;
    this.lr = this.baseLr * this.gamma ** passed;
    return this.lr;
  }

  state(): Record<string, number> {
    return {lr: this.lr};
  }
}

/** CosineAnnealingLR over the whole run, down to minLr. */
export class CosineLR implements LrScheduler {
  readonly name = 'cosine';
  lr: number;

  constructor(
    private readonly baseLr: number,
    private readonly epochs: number,
    private readonly minLr = 0,
  ) {
    this.lr = baseLr;
  }

  step(epoch: number): number {
    const t = Math.min(epoch + 1, this.epochs);
    this.lr = this.minLr + ((this.baseLr - this.minLr) * (1 + Math.cos((Math.PI * t) / this.epochs))) / 2;
    return this.lr;
  }

  state(): Record<string, number> {
    return {lr: this.lr};
  }
}

export class ConstantLR implements LrScheduler {
  readonly name = 'constant';
  constructor(readonly lr: number) {}
  step(): number {
    return this.lr;
  }

  state(): Record<string, number> {
    return {lr: this.lr};
  }
}

export function createScheduler(name: string, lr: number, epochs: number): LrScheduler {
  switch (name) {
    case 'plateau':
      return new ReduceLROnPlateau(lr);
    case 'multistep':
      return new MultiStepLR(lr, [Math.round(epochs * 0.5), Math.round(epochs * 0.75)]);
    case 'cosine':
      return new CosineLR(lr, epochs);
    case 'constant':
      return new ConstantLR(lr);
    default:
      throw new UserError(`unknown scheduler ${name}`, {exitCode: ExitCode.usage, suggestion: `use one of ${SCHEDULERS.join(', ')}`});
  }
}
