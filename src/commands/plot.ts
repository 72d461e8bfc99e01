import {Args, Flags} from '@oclif/core';

import {DtrainCommand} from '../cli/base-command.js';
import {type PlotResult, plotRun} from '../plot/curves.js';

export default class PlotCommand extends DtrainCommand {
  static override summary = 'Draw the loss, accuracy and learning-rate curves of a run as a PNG.';
  static override description = `Reads RUN_DIR/history.jsonl (written by \`dtrain run\`, one line per epoch) and draws three panels against the epoch: train and test loss, train and test accuracy, and the learning rate, as the seed article shows them.
When a run dir was reused, only its last run is drawn.`;
  static override examples = ['<%= config.bin %> plot runs/2025-01-01T12-00-00 --out curves.png'];
  static override args = {
    runDir: Args.string({description: 'Run directory of `dtrain run` (or its history.jsonl).', required: true}),
  };
  static override flags = {
    out: Flags.string({char: 'o', description: 'PNG file to write.', default: 'curves.png'}),
  };

  async run(): Promise<PlotResult> {
    const {args, flags} = await this.parse(PlotCommand);
    const result = await plotRun(args.runDir, flags.out);
    if (result.earlierLines > 0) this.progress(`dtrain: ${result.history} holds earlier runs too (${result.earlierLines} lines); drew the last run only`);
    this.log(`wrote ${result.out} (${result.width}×${result.height}): ${result.epochs} epoch${result.epochs === 1 ? '' : 's'} from ${result.history}`);
    return result;
  }
}
