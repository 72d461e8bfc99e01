/**
 * `dtrain bench allreduce`: dtrain's ring (each partial-sums setting) and, where a Python imports
 * torch, torch.distributed gloo's all_reduce among the same number of local processes on the same
 * payloads, in one run; both summarised by the same formula (allreduce/bench.ts summarise).
 */
import {type AllReduceBenchResult, type BenchRingOptions, benchAllReduce, summarise} from '../allreduce/bench.js';
import type {PartialSums} from '../allreduce/ring.js';
import {ExitCode, UserError} from '../cli/errors.js';
import {ratio} from './stats.js';
import {type TorchProbe, probeTorch, torchAllReduceTimes} from './torch.js';

export const PARTIAL_SUMS: readonly PartialSums[] = ['float64', 'float32'];

export interface AllReduceComparisonRow extends AllReduceBenchResult {
  implementation: 'dtrain' | 'gloo';
  /** How reduce-scatter partial sums travel (gloo sums in float32). */
  partialSums: PartialSums;
  /** dtrain rows: busbw ÷ gloo's busbw at the same ranks and payload; null for gloo rows or without PyTorch. */
  busbwRatioToGloo: number | null;
}

export interface AllReduceComparisonReport {
  torch: TorchProbe;
  results: AllReduceComparisonRow[];
}

export interface AllReduceComparisonOptions {
  workers: number[];
  sizes: number[];
  iters: number;
  warmup: number;
  partialSums: PartialSums[];
  /** dtrain rings to measure: plain, CURVE (as cluster jobs run), or both (gloo is always plain). */
  security: AllReduceBenchResult['security'][];
  ring: Omit<BenchRingOptions, 'partialSums'>;
  /** false: skip gloo even where torch is installed. */
  torch: boolean;
}

/** "float64,float32" → the settings in that order. */
export function parsePartialSums(text: string): PartialSums[] {
  const values = text.split(',').map((s) => s.trim());
  const bad = values.find((v) => !PARTIAL_SUMS.includes(v as PartialSums));
  if (bad !== undefined) throw new UserError(`unknown --partial-sums "${bad}"`, {exitCode: ExitCode.usage, suggestion: 'use float64, float32 or float64,float32'});
  return [...new Set(values as PartialSums[])];
}

/** "2,4" → [2, 4]: process counts of at least 1. */
export function parseWorkerCounts(text: string): number[] {
  return text.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new UserError(`--workers takes process counts of at least 1, comma-separated; got "${s.trim()}"`, {exitCode: ExitCode.usage, suggestion: 'e.g. --workers 2,4'});
    return n;
  });
}

export async function benchAllReduceComparison(options: AllReduceComparisonOptions, progress: (line: string) => void = () => {}): Promise<AllReduceComparisonReport> {
  const torch: TorchProbe = options.torch ? await probeTorch() : {available: false, reason: 'skipped (--no-torch)'};
  progress(torch.available ? `dtrain: gloo from PyTorch ${torch.version} (${torch.python}) runs the same payloads` : `dtrain: gloo not measured: ${torch.reason}`);
  const {sizes, iters, warmup} = options;
  const results: AllReduceComparisonRow[] = [];
  for (const workers of options.workers) {
    const gloo: AllReduceBenchResult[] = [];
    if (torch.available) {
      progress(`  ${workers} processes: gloo all_reduce`);
      const timed = await torchAllReduceTimes(torch.python, workers, sizes, iters, warmup);
      gloo.push(...timed.sizes.map((s) => summarise('plain', workers, s.bytes, s.times)));
    }
    for (const security of options.security) {
      for (const partialSums of options.partialSums) {
        progress(`  ${workers} processes: dtrain ring, ${partialSums} partial sums${security === 'curve' ? ', CURVE' : ''}`);
        const own = await benchAllReduce({workers, sizes, iters, warmup, ring: {...options.ring, partialSums}, curve: security === 'curve'});
        results.push(...own.map((r, i) => ({...r, implementation: 'dtrain' as const, partialSums, busbwRatioToGloo: ratio(r.busbwGBs, gloo[i]?.busbwGBs)})));
      }
    }
    results.push(...gloo.map((r) => ({...r, implementation: 'gloo' as const, partialSums: 'float32' as const, busbwRatioToGloo: null})));
  }
  return {torch, results};
}
