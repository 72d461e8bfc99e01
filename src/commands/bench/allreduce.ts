import {Flags} from '@oclif/core';

import {DEFAULT_BENCH_BYTES, parseBytes} from '../../allreduce/bench.js';
import {DEFAULT_CHUNK_BYTES} from '../../allreduce/ring.js';
import {type AllReduceComparisonReport, benchAllReduceComparison, parseCompressions, parsePartialSums, parseWorkerCounts} from '../../bench/allreduce.js';
import {DtrainCommand} from '../../cli/base-command.js';
import {formatTable} from '../../cli/table.js';

export default class BenchAllReduceCommand extends DtrainCommand {
  static override summary = 'Measure ring all-reduce bandwidth between worker processes on this machine, next to gloo.';
  static override description = `Starts --workers processes joined in a ZeroMQ ring on 127.0.0.1; each all-reduces (mean) a float32 buffer of each --bytes size, --iters times after --warmup rounds. Reports the median of the slowest rank per round, algbw = bytes / time and busbw = algbw × 2(N−1)/N as nccl-tests define them.
Where a Python imports torch ($DTRAIN_PYTHON, else python3, else /usr/bin/python3), torch.distributed's gloo all_reduce (SUM, then divide; float32) runs among the same number of processes on the same payloads in the same run, summarised the same way, and each dtrain row shows its busbw ÷ gloo's. gloo sums in float32, so dtrain's float32 row is the like-for-like one.
--grad-compression none,fp16 also measures rings that carry IEEE half precision between ranks (2 bytes a value: half of float32, a quarter of the float64 partial sums), right after the uncompressed ones, as \`dtrain run --grad-compression fp16\` trains; bandwidths count the float32 buffer's bytes, so its gain shows directly as busbw.`;
  static override examples = ['<%= config.bin %> bench allreduce --workers 2,4', '<%= config.bin %> bench allreduce --workers 4 --bytes 10MB --iters 20 --json', '<%= config.bin %> bench allreduce --workers 3 --partial-sums float32 --no-torch', '<%= config.bin %> bench allreduce --workers 2,4 --grad-compression none,fp16'];
  static override flags = {
    workers: Flags.string({char: 'n', description: 'Processes in the ring, comma-separated for several runs (e.g. 2,4).', default: '2'}),
    bytes: Flags.string({description: `Payload size(s), comma-separated: 4096, 1.4MB, 10MB, 256KiB (MB = 10^6). [default: ${DEFAULT_BENCH_BYTES.map((b) => `${b / 1e6}MB`).join(',')}]`}),
    iters: Flags.integer({description: 'Timed rounds per size.', default: 10, min: 1}),
    warmup: Flags.integer({description: 'Untimed rounds first.', default: 3, min: 0}),
    chunk: Flags.string({description: 'Pipeline chunk size.', default: `${DEFAULT_CHUNK_BYTES / 1024}KiB`}),
    timeout: Flags.integer({description: 'All-reduce timeout per rank, ms.', default: 30_000, min: 1}),
    'partial-sums': Flags.string({description: 'How reduce-scatter partial sums travel, comma-separated to measure several: float64 (training default: the exactly rounded mean in any ring order) or float32 (fewer bytes; what gloo does).', default: 'float64,float32'}),
    'grad-compression': Flags.string({description: 'What travels between ranks, comma-separated to measure several: none (the float32/float64 values of --partial-sums) or fp16 (half precision both ways, as `dtrain run --grad-compression fp16`).', default: 'none'}),
    torch: Flags.boolean({description: 'Measure gloo too where torch is installed (--no-torch: dtrain alone).', default: true, allowNo: true}),
    security: Flags.string({description: 'dtrain rings: plain, curve (encrypted and key-checked, as cluster jobs run), or both, side by side in the table.', options: ['plain', 'curve', 'both'], default: 'plain'}),
  };

  async run(): Promise<AllReduceComparisonReport> {
    const {flags} = await this.parse(BenchAllReduceCommand);
    const workers = parseWorkerCounts(flags.workers);
    const sizes = flags.bytes === undefined ? DEFAULT_BENCH_BYTES : flags.bytes.split(',').map(parseBytes);
    const chunkBytes = parseBytes(flags.chunk);
    const partialSums = parsePartialSums(flags['partial-sums']);
    const compressions = parseCompressions(flags['grad-compression']);
    this.progress(`dtrain: ring all-reduce, ${workers.join(' and ')} processes on 127.0.0.1, chunk ${chunkBytes} bytes, ${partialSums.join(' and ')} partial sums${compressions.includes('fp16') ? ', and fp16 on the wire' : ''}`);
    const security = flags.security === 'both' ? (['plain', 'curve'] as const) : ([flags.security as 'plain' | 'curve'] as const);
    const report = await benchAllReduceComparison({workers, sizes, iters: flags.iters, warmup: flags.warmup, partialSums, compressions, security: [...security], ring: {chunkBytes, timeoutMs: flags.timeout}, torch: flags.torch}, (line) => this.progress(line));
    this.log(
      formatTable(
        ['Workers', 'Bytes', 'all-reduce', 'median ms', 'algbw GB/s', 'busbw GB/s', 'busbw ÷ gloo'],
        report.results.map((r) => [
          r.workers,
          r.bytes,
          r.implementation === 'gloo' ? 'gloo (float32)' : `dtrain (${r.partialSums ? `${r.partialSums} partial sums` : `${r.compression} on the wire`}${r.security === 'curve' ? ', CURVE' : ''})`,
          round(r.medianMs, 2),
          round(r.algbwGBs, 3),
          round(r.busbwGBs, 3),
          r.busbwRatioToGloo === null ? '-' : r.busbwRatioToGloo.toFixed(2),
        ]),
      ),
    );
    if (!report.torch.available) this.log(`gloo not measured: ${report.torch.reason}`);
    return report;
  }
}

/** Numbers stay numbers (so formatTable right-aligns them), just shorter. */
function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}
