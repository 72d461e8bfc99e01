import {Flags} from '@oclif/core';

import {DtrainCommand} from '../../cli/base-command.js';
import {ExitCode, UserError} from '../../cli/errors.js';
import {backendFlag} from '../../cli/flags.js';
import {formatTable} from '../../cli/table.js';
import {type StepBenchResult, benchStep} from '../../bench/step.js';
import {type BackendChoice, describeBackend, initBackend} from '../../engine/backend.js';
import {parseModelSize} from '../../model/architecture.js';

export default class BenchStepCommand extends DtrainCommand {
  static override summary = 'Measure training-step throughput: images/s of forward + backward + SGD.';
  static override description = 'Runs the same step as training (Trainer.step) on random images after warm-up steps and reports the median. GFLOP/s counts 3 × forward MACs × 2 per image. A benchmark, not a test: numbers vary with the machine, so compare within one run.';
  static override examples = ['<%= config.bin %> bench step --size 0.5 --batch 32', '<%= config.bin %> bench step --size 1.5 --batch 32 --backend wasm --json'];
  static override flags = {
    size: Flags.string({char: 's', description: 'Model size(s), comma-separated.', default: '0.5'}),
    batch: Flags.integer({description: 'Images per step.', default: 32}),
    steps: Flags.integer({description: 'Timed steps (after 2 warm-up steps).', default: 5}),
    backend: backendFlag,
  };

  async run(): Promise<{results: StepBenchResult[]}> {
    const {flags} = await this.parse(BenchStepCommand);
    if (flags.batch < 1 || flags.steps < 1) throw new UserError('--batch and --steps must be at least 1', {exitCode: ExitCode.usage});
    const sizes = flags.size.split(',').map((s) => parseModelSize(s.trim()));
    const backend = await initBackend(flags.backend as BackendChoice);
    this.progress(`dtrain: ${describeBackend(backend)}`);
    const results: StepBenchResult[] = [];
    for (const size of sizes) {
      results.push(await benchStep(backend, size, flags.batch, flags.steps, 2, (i, ms) => this.progress(`  size ${size} ${i < 0 ? 'warm-up' : `step ${i + 1}/${flags.steps}`}: ${ms.toFixed(0)} ms`)));
    }
    this.log(
      formatTable(
        ['Backend', 'Size', 'Batch', 'ms/step', 'images/s', 'GFLOP/s'],
        results.map((r) => [r.backend, String(r.size), r.batch, r.msPerStep.toFixed(1), r.imagesPerSec.toFixed(1), r.gflopsPerSec.toFixed(2)]),
      ),
    );
    return {results};
  }
}
