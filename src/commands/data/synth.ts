import path from 'node:path';

import {Flags} from '@oclif/core';

import {DtrainCommand} from '../../cli/base-command.js';
import {ExitCode, UserError} from '../../cli/errors.js';
import {CIFAR10_SUBDIR, classCounts, datasetDigest, generateSynthetic, SYNTHETIC_DEFAULTS, SYNTHETIC_LABEL_NOISE, writeCifar10Dir} from '../../data/index.js';

export interface SynthResult {
  dir: string;
  batchesDir: string;
  seed: number;
  train: number;
  test: number;
  trainPerClass: number[];
  testPerClass: number[];
  files: string[];
  /** sha256 of labels + images of each split (same seed and counts → same digests, on any machine). */
  digest: {train: string; test: string};
}

export default class DataSynthCommand extends DtrainCommand {
  static override summary = 'Write a synthetic dataset in the CIFAR-10 binary format (for offline runs and tests).';
  static override description = `Ten classes of striped patterns (class-specific colours, orientation and period) with random phase, window, contrast, colour cast and noise, and ${Math.round(SYNTHETIC_LABEL_NOISE * 100)}% of images showing another class than their label: a small CNN learns it in an epoch or two but cannot reach 100%. Deterministic for a seed on every machine; classes balanced.
The files land in DIR/${CIFAR10_SUBDIR}/, so \`--data cifar10 --data-dir DIR\` reads them like the real thing. (\`--data synthetic\` generates the same images in memory without writing anything.)`;
  static override examples = ['<%= config.bin %> data synth --dir /tmp/synth', '<%= config.bin %> data synth --dir /tmp/synth --train 50000 --test 10000 --seed 7 --json'];
  static override flags = {
    dir: Flags.string({char: 'd', aliases: ['data-dir'], description: 'Where to write (cifar-10-batches-bin/ is created inside).', required: true}),
    train: Flags.integer({description: 'Training images.', default: SYNTHETIC_DEFAULTS.trainCount, min: 0}),
    test: Flags.integer({description: 'Test images.', default: SYNTHETIC_DEFAULTS.testCount, min: 0}),
    seed: Flags.integer({description: 'Seed: same seed and counts → same bytes.', default: SYNTHETIC_DEFAULTS.seed}),
  };

  async run(): Promise<SynthResult> {
    const {flags} = await this.parse(DataSynthCommand);
    if (flags.train + flags.test === 0) throw new UserError('Nothing to generate: --train and --test are both 0', {exitCode: ExitCode.usage});
    this.progress(`generating ${flags.train} train + ${flags.test} test images (seed ${flags.seed})`);
    const {train, test} = generateSynthetic({trainCount: flags.train, testCount: flags.test, seed: flags.seed});
    const files = await writeCifar10Dir(flags.dir, train, test);
    const batchesDir = path.join(flags.dir, CIFAR10_SUBDIR);
    this.log(`Wrote ${train.count} train + ${test.count} test synthetic images to ${batchesDir}`);
    this.log(`Use them with: --data cifar10 --data-dir ${flags.dir}`);
    return {
      dir: flags.dir,
      batchesDir,
      seed: flags.seed,
      train: train.count,
      test: test.count,
      trainPerClass: classCounts(train),
      testPerClass: classCounts(test),
      files,
      digest: {train: datasetDigest(train), test: datasetDigest(test)},
    };
  }
}
