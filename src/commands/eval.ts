import {Flags} from '@oclif/core';

import {DtrainCommand} from '../cli/base-command.js';
import {formatPerClassTable} from '../cli/run-report.js';
import type {DataSource} from '../data/index.js';
import {type BackendChoice, describeBackend} from '../engine/backend.js';
import {describeCheckpoint} from '../model/checkpoint.js';
import {type EvaluateResult, evaluateCheckpoint} from '../predict/evaluate.js';
import {backendFlag, checkpointFlags, optionalSize, testDataFlags} from '../cli/flags.js';

const percent = (value: number): string => (Number.isNaN(value) ? '—' : `${(100 * value).toFixed(2)}%`);

export default class EvalCommand extends DtrainCommand {
  static override summary = 'Test accuracy of a checkpoint, overall and per class.';
  static override description = `Evaluates like \`dtrain run\` does after each epoch: the test transform (normalise only), BatchNorm in eval mode, mean cross-entropy and accuracy, then the seed's per-class table (airplane … truck).
The model size comes from the checkpoint's metadata; a state_dict exported from PyTorch without metadata needs --size.`;
  static override examples = [
    '<%= config.bin %> eval --checkpoint runs/2025-01-01T12-00-00/checkpoint-epoch20.safetensors',
    '<%= config.bin %> eval --checkpoint model.safetensors --size 0.5 --data synthetic --json',
  ];
  static override flags = {
    ...checkpointFlags,
    ...testDataFlags,
    'test-limit': Flags.integer({description: 'Use only the first N test images.'}),
    backend: backendFlag,
  };

  async run(): Promise<EvaluateResult> {
    const {flags} = await this.parse(EvalCommand);
    const result = await evaluateCheckpoint({
      checkpoint: flags.checkpoint,
      size: optionalSize(flags.size),
      data: flags.data as DataSource,
      dataDir: flags['data-dir'],
      testLimit: flags['test-limit'],
      backend: flags.backend as BackendChoice,
      onReady: ({backend, checkpoint, source, count}) => {
        this.progress(`dtrain: ${describeBackend(backend)}`);
        this.progress(`dtrain: ${checkpoint.path} (${describeCheckpoint(checkpoint)}) on ${count} test images from ${source}`);
      },
    });
    this.log(formatPerClassTable(result.perClass));
    this.log(`\ntest accuracy ${percent(result.accuracy)} (${result.correct}/${result.count}), loss ${result.loss.toFixed(4)}`);
    return result;
  }
}
