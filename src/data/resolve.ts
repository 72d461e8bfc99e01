/** `--data cifar10|synthetic` → the two splits in memory, with limits applied. */
import {ExitCode, UserError} from '../cli/errors.js';
import {type Dataset, findCifar10Dir, loadCifar10} from './cifar10.js';
import {defaultDataDir} from './paths.js';
import {generateSynthetic} from './synthetic.js';

export const DATA_SOURCES = ['cifar10', 'synthetic'] as const;
export type DataSource = (typeof DATA_SOURCES)[number];

export const SYNTHETIC_DEFAULTS = {trainCount: 5000, testCount: 1000, seed: 0} as const;

export interface ResolveDatasetOptions {
  data: DataSource;
  /** cifar10 only: the data dir (default: defaultDataDir()). */
  dir?: string;
  /** Keep the first N training images. */
  trainLimit?: number;
  /** Keep the first N test images. */
  testLimit?: number;
  /** synthetic only (default 0). */
  seed?: number;
}

export interface ResolvedDataset {
  train: Dataset;
  test: Dataset;
  /** In words, for logs: "cifar10 (/path/cifar-10-batches-bin)", "synthetic (seed 0)". */
  source: string;
}

function checkLimit(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
    throw new UserError(`${name} must be a positive integer, got ${value}`, {exitCode: ExitCode.usage});
  }
}

export async function resolveDataset(options: ResolveDatasetOptions): Promise<ResolvedDataset> {
  checkLimit('Train image limit', options.trainLimit);
  checkLimit('Test image limit', options.testLimit);
  switch (options.data) {
    case 'synthetic': {
      const seed = options.seed ?? SYNTHETIC_DEFAULTS.seed;
      if (!Number.isInteger(seed)) throw new UserError(`--seed must be an integer, got ${seed}`, {exitCode: ExitCode.usage});
      // Image k depends only on (seed, k), so generating N equals taking the first N of the default set.
      const {train, test} = generateSynthetic({
        trainCount: options.trainLimit ?? SYNTHETIC_DEFAULTS.trainCount,
        testCount: options.testLimit ?? SYNTHETIC_DEFAULTS.testCount,
        seed,
      });
      return {train, test, source: `synthetic (seed ${seed})`};
    }
    case 'cifar10': {
      const dir = options.dir ?? defaultDataDir();
      const found = await findCifar10Dir(dir);
      if (!found) {
        throw new UserError(`CIFAR-10 is not in ${dir}`, {
          exitCode: ExitCode.data,
          suggestion: `Run \`dtrain data download${options.dir ? ` --dir ${dir}` : ''}\` first, or use \`--data synthetic\` (no download needed)`,
        });
      }
      const train = await loadCifar10(found, 'train', options.trainLimit);
      const test = await loadCifar10(found, 'test', options.testLimit);
      return {train, test, source: `cifar10 (${found})`};
    }
    default:
      throw new UserError(`Unknown dataset "${String(options.data)}" (expected ${DATA_SOURCES.join(' or ')})`, {exitCode: ExitCode.usage});
  }
}
