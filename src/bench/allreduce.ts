/**
 * `dtrain bench allreduce`: dtrain's ring (each partial-sums setting) and, where a Python imports
 * torch, torch.distributed gloo's all_reduce among the same number of local processes on the same
 * payloads, in one run; both summarised by the same formula (allreduce/bench.ts summarise).
 */
import {type AllReduceBenchResult, type BenchRingOptions, benchAllReduce, summarise} from '../allreduce/bench.js';
import {type Compression, COMPRESSIONS, type PartialSums} from '../allreduce/ring.js';
import {ExitCode, UserError} from '../cli/errors.js';
import {ratio} from './stats.js';
import {type TorchProbe, probeTorch, torchAllReduceTimes} from './torch.js';

export const PARTIAL_SUMS: readonly PartialSums[] = ['float64', 'float32'];

export interface AllReduceComparisonRow extends AllReduceBenchResult {
  implementation: 'dtrain' | 'gloo';
  /** What travels between ranks: none (as partialSums says) or fp16 (half precision in both phases); gloo rows: none. */
  compression: Compression;
  /** How reduce-scatter partial sums travel (gloo sums in float32); null for fp16 rows, where they travel as fp16. */
  partialSums: PartialSums | null;
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
  /** Compressions to measure; 'none' rows once per partialSums setting, 'fp16' rows once. */
  compressions: Compression[];
  /** dtrain rings to measure: plain, CURVE (as cluster jobs run), or both (gloo is always plain). */
  security: AllReduceBenchResult['security'][];
  ring: Omit<BenchRingOptions, 'partialSums' | 'compression'>;
  /** false: skip gloo even where torch is installed. */
  torch: boolean;
}

/** "a,b" → the distinct values in that order, each one of `allowed`; anything else is a usage error naming `flag`. */
function parseChoices<T extends string>(text: string, allowed: readonly T[], flag: string): T[] {
  const values = text.split(',').map((s) => s.trim());
  const bad = values.find((v) => !(allowed as readonly string[]).includes(v));
  if (bad !== undefined) throw new UserError(`unknown ${flag} "${bad}"`, {exitCode: ExitCode.usage, suggestion: `use ${allowed.join(', ')} or ${allowed.join(',')}`});
  return [...new Set(values as T[])];
}

/** "float64,float32" → the settings in that order. */
export function parsePartialSums(text: string): PartialSums[] {
  return parseChoices(text, PARTIAL_SUMS, '--partial-sums');
}

/** "none,fp16" → the compressions in that order. */
export function parseCompressions(text: string): Compression[] {
  return parseChoices(text, COMPRESSIONS, '--grad-compression');
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
    // Each compression's rings right after the other's, so that a busy machine slows them alike.
    const rings = options.compressions.flatMap((compression): Array<{compression: Compression; partialSums: PartialSums | null}> =>
      compression === 'none' ? options.partialSums.map((partialSums) => ({compression, partialSums})) : [{compression, partialSums: null}],
    );
    for (const security of options.security) {
      for (const {compression, partialSums} of rings) {
        progress(`  ${workers} processes: dtrain ring, ${partialSums ? `${partialSums} partial sums` : `${compression} on the wire`}${security === 'curve' ? ', CURVE' : ''}`);
        const own = await benchAllReduce({workers, sizes, iters, warmup, ring: {...options.ring, partialSums: partialSums ?? undefined, compression}, curve: security === 'curve'});
        results.push(...own.map((r, i) => ({...r, implementation: 'dtrain' as const, compression, partialSums, busbwRatioToGloo: ratio(r.busbwGBs, gloo[i]?.busbwGBs)})));
      }
    }
    results.push(...gloo.map((r) => ({...r, implementation: 'gloo' as const, compression: 'none' as const, partialSums: 'float32' as const, busbwRatioToGloo: null})));
  }
  return {torch, results};
}
