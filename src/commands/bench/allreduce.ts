import {Flags} from '@oclif/core';

import {type AllReduceBenchResult, benchAllReduce, DEFAULT_BENCH_BYTES, parseBytes} from '../../allreduce/bench.js';
import {DEFAULT_CHUNK_BYTES, type PartialSums} from '../../allreduce/ring.js';
import {DtrainCommand} from '../../cli/base-command.js';
import {formatTable} from '../../cli/table.js';

export default class BenchAllReduceCommand extends DtrainCommand {
  static override summary = 'Measure ring all-reduce bandwidth between worker processes on this machine.';
  static override description =
    'Starts --workers processes joined in a ZeroMQ ring on 127.0.0.1; each all-reduces (mean) a float32 buffer of each --bytes size, --iters times after --warmup rounds. Reports the median of the slowest rank per round, algbw = bytes / time and busbw = algbw × 2(N−1)/N as nccl-tests define them.';
  static override examples = ['<%= config.bin %> bench allreduce', '<%= config.bin %> bench allreduce --workers 4 --bytes 10MB --iters 20 --json', '<%= config.bin %> bench allreduce --workers 3 --partial-sums float32'];
  static override flags = {
    workers: Flags.integer({char: 'n', description: 'Processes in the ring.', default: 2, min: 1}),
    bytes: Flags.string({description: `Payload size(s), comma-separated: 4096, 1.4MB, 10MB, 256KiB (MB = 10^6). [default: ${DEFAULT_BENCH_BYTES.map((b) => `${b / 1e6}MB`).join(',')}]`}),
    iters: Flags.integer({description: 'Timed rounds per size.', default: 10, min: 1}),
    warmup: Flags.integer({description: 'Untimed rounds first.', default: 3, min: 0}),
    chunk: Flags.string({description: 'Pipeline chunk size.', default: `${DEFAULT_CHUNK_BYTES / 1024}KiB`}),
    timeout: Flags.integer({description: 'All-reduce timeout per rank, ms.', default: 30_000, min: 1}),
    'partial-sums': Flags.string({description: 'How reduce-scatter partial sums travel: float64 (training default: the exactly rounded mean in any ring order) or float32 (fewer bytes).', options: ['float64', 'float32'], default: 'float64'}),
    security: Flags.string({description: 'plain, curve (encrypted and key-checked, as cluster jobs run), or both: one ring after the other, side by side in the table.', options: ['plain', 'curve', 'both'], default: 'plain'}),
  };

  async run(): Promise<{results: AllReduceBenchResult[]}> {
    const {flags} = await this.parse(BenchAllReduceCommand);
    const sizes = flags.bytes === undefined ? DEFAULT_BENCH_BYTES : flags.bytes.split(',').map(parseBytes);
    const chunkBytes = parseBytes(flags.chunk);
    const partialSums = flags['partial-sums'] as PartialSums;
    this.progress(`dtrain: ring all-reduce, ${flags.workers} processes on 127.0.0.1, chunk ${chunkBytes} bytes, ${partialSums} partial sums`);
    const results: AllReduceBenchResult[] = [];
    for (const curve of flags.security === 'both' ? [false, true] : [flags.security === 'curve']) {
      results.push(...(await benchAllReduce({workers: flags.workers, sizes, iters: flags.iters, warmup: flags.warmup, ring: {chunkBytes, timeoutMs: flags.timeout, partialSums}, curve})));
    }
    this.log(
      formatTable(
        ['Security', 'Workers', 'Bytes', 'median ms', 'algbw GB/s', 'busbw GB/s'],
        results.map((r) => [r.security, r.workers, r.bytes, round(r.medianMs, 2), round(r.algbwGBs, 3), round(r.busbwGBs, 3)]),
      ),
    );
    return {results};
  }
}

/** Numbers stay numbers (so formatTable right-aligns them), just shorter. */
function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}
