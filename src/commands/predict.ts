import {Args, Flags} from '@oclif/core';

import {DtrainCommand} from '../cli/base-command.js';
import {ExitCode, UserError} from '../cli/errors.js';
import type {DataSource} from '../data/index.js';
import {type BackendChoice, describeBackend} from '../engine/backend.js';
import {describeCheckpoint} from '../model/checkpoint.js';
import {backendFlag, checkpointFlags, optionalSize, testDataFlags} from '../cli/flags.js';
import {type GridResult, writePredictionGrid} from '../predict/grid.js';
import {IMAGE_FORMATS} from '../predict/images.js';
import {failureExitCode, type ImagePrediction, isFailure, type PredictOutcome, predictImages} from '../predict/predict.js';
import {openModel} from '../predict/session.js';

const percent = (p: number): string => `${(100 * p).toFixed(1)}%`;

export default class PredictCommand extends DtrainCommand {
  static override summary = 'Classify images (files or URLs), or draw a grid of test-set predictions.';
  static override description = `Each IMAGE (a path or an http(s) URL; ${IMAGE_FORMATS.join(', ')}) is stretched to 32×32 (bilinear), normalised like training ((x/255 − 0.5)/0.5, alpha dropped) and classified: the top class and the softmax probability of all ten classes.
An input that cannot be read, fetched or decoded is reported in one line on stderr; the others are still classified, and the exit code is non-zero at the end (4 network, 5 data, 1 mixed).
With --grid OUT.png, instead: 64 test images (drawn with --seed) in an 8×8 grid with predicted and true labels, green when right and red when wrong.`;
  static override examples = [
    '<%= config.bin %> predict --checkpoint runs/x/checkpoint-epoch20.safetensors cat.jpg https://example.com/ship.png',
    '<%= config.bin %> predict --checkpoint model.safetensors --json photo.webp',
    '<%= config.bin %> predict --checkpoint runs/x/checkpoint-epoch20.safetensors --grid predictions.png --data synthetic',
  ];
  static override strict = false;
  static override args = {
    image: Args.string({description: 'Image files or http(s) URLs (any number).'}),
  };
  static override flags = {
    ...checkpointFlags,
    timeout: Flags.string({description: 'Seconds a URL may stay silent (connecting or sending) before it counts as failed.', default: '10'}),
    grid: Flags.string({description: 'Write a grid of 64 test-set predictions to this PNG instead of classifying IMAGEs.'}),
    ...testDataFlags,
    seed: Flags.integer({description: 'With --grid: seed of the draw of test images.', default: 0}),
    backend: backendFlag,
  };

  async run(): Promise<PredictOutcome[] | GridResult> {
    const {argv, flags} = await this.parse(PredictCommand);
    const inputs = argv as string[];
    const usage = (message: string, suggestion: string) => new UserError(message, {exitCode: ExitCode.usage, suggestion});
    if (flags.grid === undefined && inputs.length === 0) throw usage('nothing to predict', 'name image files or URLs, or pass --grid OUT.png');
    if (flags.grid !== undefined && inputs.length > 0) throw usage('IMAGE arguments and --grid do not go together', 'run predict once for the images and once with --grid');
    const timeout = Number(flags.timeout);
    if (!(timeout > 0)) throw usage(`--timeout must be a positive number of seconds, got ${flags.timeout}`, 'e.g. --timeout 10');
    const {model, checkpoint, backend} = await openModel({checkpoint: flags.checkpoint, size: optionalSize(flags.size), backend: flags.backend as BackendChoice});
    this.progress(`dtrain: ${describeBackend(backend)}; ${checkpoint.path} (${describeCheckpoint(checkpoint)})`);
    try {
      if (flags.grid !== undefined) {
        const grid = await writePredictionGrid(model, {data: flags.data as DataSource, dataDir: flags['data-dir'], seed: flags.seed, out: flags.grid});
        this.log(`wrote ${grid.out} (${grid.width}×${grid.height}): ${grid.correct}/${grid.images} right on ${grid.source}`);
        return grid;
      }
      // Failures go to stderr as they happen, also with --json (stdout stays the JSON array).
      const outcomes = await predictImages(model, inputs, {timeoutMs: timeout * 1000, onFailure: (f) => process.stderr.write(`Error: ${f.error}\n`)});
      for (const o of outcomes) if (!isFailure(o)) this.log(formatPrediction(o));
      const failures = outcomes.filter(isFailure);
      if (failures.length > 0) {
        process.stderr.write(`Error: ${failures.length} of ${inputs.length} inputs could not be classified (see above)\n`);
        process.exitCode = failureExitCode(failures);
      }
      return outcomes;
    } finally {
      model.dispose();
    }
  }
}

/** "cat.jpg: cat (87.3%)" and the ten probabilities over two lines. */
function formatPrediction(p: ImagePrediction): string {
  const entries = Object.entries(p.probabilities).map(([name, value]) => `${name} ${percent(value)}`.padEnd(18));
  return [`${p.input}: ${p.class} (${percent(p.probabilities[p.class])})`, `  ${entries.slice(0, 5).join('').trimEnd()}`, `  ${entries.slice(5).join('').trimEnd()}`].join('\n');
}
