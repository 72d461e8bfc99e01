import {Flags} from '@oclif/core';

import {type ScalingReport, benchScaling} from '../../bench/scaling.js';
import {parseCompressions, parseWorkerCounts} from '../../bench/allreduce.js';
import {DtrainCommand} from '../../cli/base-command.js';
import {ExitCode, UserError} from '../../cli/errors.js';
import {backendFlag, sizeFlag} from '../../cli/flags.js';
import {formatTable} from '../../cli/table.js';
import {parseModelSize} from '../../model/architecture.js';

export default class BenchScalingCommand extends DtrainCommand {
  static override summary = 'Measure data-parallel scaling: `dtrain run` with 1 and 2 workers, same global batch.';
  static override description = `Runs \`dtrain run --json\` (a local coordinator and N real worker processes, the cluster path even for 1 worker) on synthetic data once per --workers count, with the same global batch, and reports from the last epoch: aggregate training images/s, efficiency = throughput / (N × one worker's), and the share of training time spent in the all-reduce, waiting for peers included. The first epoch is warm-up. On a machine with fewer cores than workers the workers share cores, which caps efficiency.`;
  static override examples = ['<%= config.bin %> bench scaling', '<%= config.bin %> bench scaling --grad-compression none,fp16', '<%= config.bin %> bench scaling --workers 1,2,4 --train-limit 2048 --json'];
  static override flags = {
    workers: Flags.string({char: 'n', description: 'Worker counts, comma-separated; efficiency is against the first.', default: '1,2'}),
    size: sizeFlag,
    'batch-size': Flags.integer({description: 'Global batch, split over the workers.', default: 128, min: 1}),
    'train-limit': Flags.integer({description: 'Training images per epoch.', default: 1024, min: 1}),
    'test-limit': Flags.integer({description: 'Test images per epoch (eval is not timed).', default: 64, min: 1}),
    epochs: Flags.integer({description: 'Epochs per run; the last is measured.', default: 2, min: 1}),
    backend: backendFlag,
    'grad-compression': Flags.string({description: 'What the ring carries, comma-separated to compare in one run: none (exact, the default of `dtrain run`) and/or fp16. One worker has no ring and runs once.', default: 'none'}),
  };

  async run(): Promise<ScalingReport> {
    const {flags} = await this.parse(BenchScalingCommand);
    const workers = parseWorkerCounts(flags.workers);
    const globalBatch = flags['batch-size'];
    if (globalBatch < Math.max(...workers)) throw new UserError(`--batch-size (${globalBatch}) must be at least the largest --workers (${Math.max(...workers)})`, {exitCode: ExitCode.usage});
    const report = await benchScaling(
      {workers, size: parseModelSize(flags.size), globalBatch, trainLimit: flags['train-limit'], testLimit: flags['test-limit'], epochs: flags.epochs, backend: flags.backend, compressions: parseCompressions(flags['grad-compression'])},
      (line) => this.progress(line),
    );
    this.log(
      formatTable(
        ['Workers', 'Wire', 'Backend', 'images/s', 'epoch s', 'steps', 'all-reduce s', 'all-reduce share', 'efficiency'],
        report.results.map((r) => [r.workers, r.workers === 1 ? '-' : r.gradCompression, r.backend, r.imagesPerSec.toFixed(1), r.seconds.toFixed(2), r.steps, r.allreduceSeconds.toFixed(2), `${(100 * r.allreduceShare).toFixed(1)}%`, r.efficiency.toFixed(2)]),
      ),
    );
    return report;
  }
}
