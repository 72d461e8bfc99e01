/**
 * The coordinator's /metrics: what a job's progress stream says, mirrored into gauges. The job
 * already reports everything the metrics need (accepted, steps, epoch results), so the job code
 * stays free of metric calls.
 */
import {COMPRESSIONS} from '../allreduce/index.js';
import {CIFAR10_CLASSES} from '../data/index.js';
import type {JobProgress, JobSpec} from '../gen/dtrain.js';
import type {CoordinatorMetrics} from '../metrics/index.js';

export interface CoordinatorMetricsOptions {
  /** 0 takes a free port. */
  port: number;
  /** Interface to bind; on a wildcard the reported URL names the machine's hostname. */
  host: string;
}

/** Updates job gauges from each progress message of one job. */
export function jobMetricsObserver(m: CoordinatorMetrics, spec: JobSpec): (p: JobProgress) => void {
  return (p) => {
    if (p.accepted) {
      m.setJobState('running');
      m.epochsPlanned.set(spec.epochs);
      m.epoch.set(p.accepted.startEpoch);
      m.step.set(p.accepted.startEpoch * p.accepted.stepsPerEpoch);
      // The initial LR; a resumed job's replayed LR shows from its first epoch result on.
      m.learningRate.set(spec.hyper?.lr ?? 0);
      const compression = spec.hyper?.gradCompression || 'none';
      for (const c of COMPRESSIONS) m.jobGradCompression.set({compression: c}, c === compression ? 1 : 0);
    }
    if (p.step) m.step.set(p.step.epoch * p.step.steps + p.step.step);
    if (p.regrouped) {
      m.regroups.inc();
      m.lostSteps.inc(p.regrouped.lostSteps);
    }
    if (p.epoch) {
      const e = p.epoch;
      m.epoch.set(e.epoch + 1);
      m.step.set((e.epoch + 1) * e.steps);
      m.trainLoss.set(e.trainLoss);
      m.trainAccuracy.set(e.trainAcc);
      m.testLoss.set(e.testLoss);
      m.testAccuracy.set(e.testAcc);
      for (const name of CIFAR10_CLASSES) m.testClassAccuracy.set({class: name}, e.perClassAcc[name] ?? Number.NaN);
      m.learningRate.set(e.nextLr);
    }
  };
}

/** Final state and the finished counter. */
export function jobEnded(m: CoordinatorMetrics, outcome: 'completed' | 'failed'): void {
  m.setJobState(outcome);
  m.jobsFinished.inc({outcome});
}
