import type {ClusterEpoch} from '../coordinator/cluster-run.js';
import type {Regrouped} from '../gen/dtrain.js';
import {formatTable} from './table.js';

/** What both training paths (in-process and cluster) print per epoch. */
export type EpochLine = Pick<ClusterEpoch, 'epoch' | 'trainLoss' | 'trainAcc' | 'testLoss' | 'testAcc' | 'lr' | 'imagesPerSec' | 'seconds'> & {allreduceSeconds?: number; lostSteps?: number; workers?: number};

/** The seed's per-epoch line: train and test loss/accuracy, lr, images/s. */
export function formatEpochLine(r: EpochLine, epochs: number): string {
  const allreduce = r.allreduceSeconds === undefined ? '' : `  (all-reduce ${r.allreduceSeconds.toFixed(1)} s)`;
  const lost = r.lostSteps ? `  [${r.lostSteps} lost step${r.lostSteps === 1 ? '' : 's'}, ${r.workers} workers at the end]` : '';
  return (
    `epoch ${r.epoch + 1}/${epochs}  train loss ${r.trainLoss.toFixed(4)} acc ${(100 * r.trainAcc).toFixed(2)}%  ` +
    `test loss ${r.testLoss.toFixed(4)} acc ${(100 * r.testAcc).toFixed(2)}%  lr ${r.lr.toPrecision(3)}  ${r.imagesPerSec.toFixed(1)} img/s  ${r.seconds.toFixed(1)} s${allreduce}${lost}`
  );
}

/** What `dtrain run` prints when the job lost workers (or took in new ones) and continued. */
export function formatRegroupLine(r: Regrouped): string {
  return (
    `dtrain: epoch ${r.epoch + 1}: continuing with ${r.workers} worker${r.workers === 1 ? '' : 's'} after step ${r.step}, ${r.lostSteps} lost step${r.lostSteps === 1 ? '' : 's'}` +
    (r.lost.length ? `; lost ${r.lost.join('; ')}` : '') +
    (r.joined.length ? `; joined ${r.joined.join(', ')}` : '') +
    ` (resumed ${((r.resumedAtMs - r.detectedAtMs) / 1000).toFixed(1)} s after the loss was noticed)`
  );
}

/** Class name → accuracy as the seed's per-class table; '—' for a class with no test image. */
export function formatPerClassTable(perClass: Record<string, number>): string {
  return formatTable(['Class', 'Test accuracy'], Object.entries(perClass).map(([name, acc]) => [name, Number.isNaN(acc) ? '—' : `${(100 * acc).toFixed(2)}%`]));
}

/** A progress line within the epoch at most every 2 s (and at the epoch's last step), with a bar. */
export function stepProgressPrinter(print: (line: string) => void): (p: {epoch: number; step: number; steps: number; loss: number; imagesPerSec: number}) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 2000 && p.step !== p.steps) return;
    last = now;
    print(`  epoch ${p.epoch + 1} ${progressBar(p.step / p.steps)} step ${p.step}/${p.steps}  loss ${p.loss.toFixed(4)}  ${p.imagesPerSec.toFixed(1)} img/s`);
  };
}

function progressBar(fraction: number, width = 20): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}
