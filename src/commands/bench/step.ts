import {Flags} from '@oclif/core';

import {DtrainCommand} from '../../cli/base-command.js';
import {ExitCode, UserError} from '../../cli/errors.js';
import {backendFlag, precisionFlag} from '../../cli/flags.js';
import {formatTable} from '../../cli/table.js';
import {type StepComparisonReport, benchStepComparison} from '../../bench/step.js';
import {type BackendChoice, describeBackend, initBackend} from '../../engine/backend.js';
import {applyPrecision, type Precision} from '../../engine/precision.js';
import {parseModelSize} from '../../model/architecture.js';

export default class BenchStepCommand extends DtrainCommand {
  static override summary = 'Measure training-step throughput: images/s of forward + backward + SGD, next to the GEMM peak and PyTorch.';
  static override description = `Runs the same step as training (Trainer.step) on random images after warm-up steps and reports the median. GFLOP/s counts 3 × forward MACs × 2 per image; the backend's GEMM peak (a large square matMul, timed in the same run) gives the fraction of it the step achieves.
Where a Python imports torch ($DTRAIN_PYTHON, else python3, else /usr/bin/python3), the same ShuffleNetV2 in PyTorch (bench/torch/) runs the same step on one thread (SGD lr 0.1 momentum 0.9 wd 5e-4, CrossEntropy, train mode), and the ratio dtrain/PyTorch is printed. A benchmark, not a test: numbers vary with the machine and its load, so compare within one run.`;
  static override examples = ['<%= config.bin %> bench step --size 0.5,1.5 --batch 32', '<%= config.bin %> bench step --size 1.5 --batch 32 --backend wasm --no-torch --json', '<%= config.bin %> bench step --backend wasm --precision exact --no-torch'];
  static override flags = {
    size: Flags.string({char: 's', description: 'Model size(s), comma-separated.', default: '0.5'}),
    batch: Flags.integer({description: 'Images per step.', default: 32}),
    steps: Flags.integer({description: 'Timed steps (after --warmup steps), on each side.', default: 5}),
    warmup: Flags.integer({description: 'Untimed steps first, on each side.', default: 2, min: 0}),
    'gemm-size': Flags.integer({description: 'n of the n×n×n matMul that measures the GEMM peak.', default: 1024, min: 16}),
    torch: Flags.boolean({description: 'Time the PyTorch model too where torch is installed (--no-torch: dtrain alone).', default: true, allowNo: true}),
    backend: backendFlag,
    precision: precisionFlag,
  };

  async run(): Promise<StepComparisonReport> {
    const {flags} = await this.parse(BenchStepCommand);
    if (flags.batch < 1 || flags.steps < 1) throw new UserError('--batch and --steps must be at least 1', {exitCode: ExitCode.usage});
    const sizes = flags.size.split(',').map((s) => parseModelSize(s.trim()));
    const backend = await initBackend(flags.backend as BackendChoice);
    this.progress(`dtrain: ${describeBackend(backend)}; precision ${applyPrecision(backend.name, flags.precision as Precision)}`);
    const report = await benchStepComparison(backend, {sizes, batch: flags.batch, steps: flags.steps, warmup: flags.warmup, torch: flags.torch, gemmSize: flags['gemm-size']}, (line) => this.progress(line));
    const opt = (x: number | null, digits: number) => (x === null ? '-' : x.toFixed(digits));
    this.log(
      formatTable(
        ['Backend', 'Size', 'Batch', 'ms/step', 'images/s', 'GFLOP/s', 'GEMM peak', 'of peak', 'PyTorch img/s', 'dtrain/PyTorch'],
        report.results.map((r) => [
          r.backend,
          String(r.size),
          r.batch,
          r.msPerStep.toFixed(1),
          r.imagesPerSec.toFixed(1),
          r.gflopsPerSec.toFixed(2),
          r.gemmPeakGflops.toFixed(2),
          `${(100 * r.peakFraction).toFixed(1)}%`,
          opt(r.torchImagesPerSec, 1),
          opt(r.ratioToTorch, 2),
        ]),
      ),
    );
    if (!report.torch.available) this.log(`PyTorch not measured: ${report.torch.reason}`);
    return report;
  }
}
