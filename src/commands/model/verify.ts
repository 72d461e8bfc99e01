import {Args, Flags} from '@oclif/core';

import {DtrainCommand} from '../../cli/base-command.js';
import {ExitCode} from '../../cli/errors.js';
import {backendFlag} from '../../cli/flags.js';
import {formatTable} from '../../cli/table.js';
import {type BackendChoice, describeBackend, initBackend} from '../../engine/backend.js';
import {applyPrecision, hasExactKernels, type Precision, PRECISIONS} from '../../engine/precision.js';
import {readSafetensors} from '../../model/safetensors.js';
import {type VerifyReport, verifyReference} from '../../model/verify.js';

export default class ModelVerifyCommand extends DtrainCommand {
  static override summary = 'Prove the port is exact: recompute a PyTorch reference fixture and print the error of every quantity.';
  static override description = `FILE is a safetensors fixture made by shared/reference/make_reference.py (the seed's model in PyTorch, expected values in float64): weights under "model.", inputs and expected logits, loss, gradients, BatchNorm running statistics and parameters after one and two SGD steps under "ref.".
Forward quantities are compared by max absolute error (tolerance 1e-4), gradients and updates by relative L2 error (1e-2). Exits ${ExitCode.verifyFailed} when any quantity is above its tolerance.
By default the check runs with exact sums (--precision exact) wherever the backend has them (cpu, wasm, webgpu): the fixtures' second SGD step amplifies float32 rounding ~2000×, so only exact sums pass it on every fixture. --precision fast checks the kernels training uses by default: they must meet the forward, gradient and first-step tolerances; their second step may miss by float32 noise (docs/fidelity.md).`;
  static override examples = [
    '<%= config.bin %> model verify test/fixtures/shufflenetv2_0.5_reference.safetensors',
    '<%= config.bin %> model verify ref_1.5.safetensors --backend cpu --json',
    '<%= config.bin %> model verify ref_1.5.safetensors --backend wasm',
    '<%= config.bin %> model verify test/fixtures/shufflenetv2_0.5_reference.safetensors --backend webgpu --precision fast',
  ];
  static override args = {file: Args.string({description: 'reference fixture (.safetensors)', required: true})};
  static override flags = {
    backend: backendFlag,
    precision: Flags.string({
      description: 'exact (default where the backend has exact kernels: cpu, wasm, webgpu) or fast (the float32 kernels training uses by default; tensorflow has only these).',
      options: [...PRECISIONS],
    }),
  };

  async run(): Promise<VerifyReport & {backend: string; device: string; precision: string}> {
    const {args, flags} = await this.parse(ModelVerifyCommand);
    const fixture = await readSafetensors(args.file);
    const backend = await initBackend(flags.backend as BackendChoice);
    const precision = (flags.precision ?? (hasExactKernels(backend.name) ? 'exact' : 'fast')) as Precision;
    this.progress(`dtrain: ${describeBackend(backend)}; precision ${applyPrecision(backend.name, precision)}`);
    const report = await verifyReference(fixture, args.file);
    const result = {...report, backend: backend.name, device: backend.device, precision};
    const rows = report.quantities.map((q) => [q.quantity, q.measure, q.error.toExponential(2), q.tolerance.toExponential(0), q.ok ? 'ok' : 'FAIL']);
    this.log(formatTable(['Quantity', 'Measure', 'Error', 'Tolerance', 'Status'], rows));
    this.log('');
    const {forward, gradient, update} = report.worst;
    this.log(`worst errors: forward ${forward.toExponential(2)}, gradient ${gradient.toExponential(2)}, update ${update.toExponential(2)}`);
    const failed = report.quantities.filter((q) => !q.ok).length;
    this.log(report.ok ? `PASS: ShuffleNetV2 size ${report.size} on ${backend.name} (precision ${precision}) matches the PyTorch reference` : `FAIL: ${failed} of ${report.quantities.length} quantities above tolerance${(backend.name === 'wasm' || backend.name === 'webgpu') && precision === 'fast' ? ' (float32 sums in the convolutions: try --precision exact, see docs/fidelity.md)' : ''}`);
    // The report (table or --json) is printed either way; the exit status tells scripts the verdict.
    if (!report.ok) process.exitCode = ExitCode.verifyFailed;
    return result;
  }
}
