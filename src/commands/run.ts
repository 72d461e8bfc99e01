import {join} from 'node:path';

import {Flags, type Interfaces} from '@oclif/core';

import {COMPRESSIONS, type Compression} from '../allreduce/index.js';
import {DtrainCommand} from '../cli/base-command.js';
import {ExitCode, UserError} from '../cli/errors.js';
import {backendFlag, coordinatorSecurityFlags, dataDirFlag, precisionFlag, requireBackendFlag, sizeFlag} from '../cli/flags.js';
import {formatEpochLine, formatPerClassTable, formatRegroupLine, stepProgressPrinter} from '../cli/run-report.js';
import {DATA_SOURCES, type DataSource} from '../data/index.js';
import type {BackendChoice} from '../engine/backend.js';
import {describeBackend} from '../engine/backend.js';
import type {Precision} from '../engine/precision.js';
import {type ModelSize, parseModelSize} from '../model/architecture.js';
import {DEFAULT_KEEP_CHECKPOINTS} from '../coordinator/checkpoint.js';
import {resolveClientSecurity} from '../coordinator/auth.js';
import {type ClusterRunResult, runOnCluster} from '../coordinator/cluster-run.js';
import {localClusterToken} from '../coordinator/local-cluster.js';
import {SCHEDULERS} from '../optim/schedulers.js';
import {type LocalRunResult, runLocal} from '../worker/local-run.js';

function check(ok: boolean, message: string, suggestion: string): void {
  if (!ok) throw new UserError(message, {exitCode: ExitCode.usage, suggestion});
}

export default class RunCommand extends DtrainCommand {
  static override summary = 'Train ShuffleNetV2 on CIFAR-10 with the seed recipe and print per-epoch results.';
  static override description = `Defaults are the seed article's: size 0.5, global batch 128, SGD lr 0.1 momentum 0.9 weight decay 5e-4, ReduceLROnPlateau on the train loss (factor 0.94, patience 1, min 1e-6), RandomCrop(32, pad 4) + horizontal flip, 20 epochs.
Each epoch appends a line to RUN_DIR/history.jsonl and writes RUN_DIR/checkpoint-epochN.safetensors (PyTorch names and layouts: loadable into the seed's PyTorch model).
Without the real CIFAR-10 (dtrain data download), use --data synthetic.
With --workers N the gradients are averaged over a ring; --grad-compression fp16 sends them between workers as IEEE half precision (half of the default's bytes with 2 workers, heading for a third with many; results within fp16 rounding instead of bit-identical to one process; see docs/allreduce.md).`;
  static override examples = [
    '<%= config.bin %> run --data synthetic --epochs 2 --train-limit 512 --test-limit 256',
    '<%= config.bin %> run --size 0.5 --epochs 20',
    '<%= config.bin %> run --data cifar10 --data-dir ./cifar --backend wasm --json',
    '<%= config.bin %> run --workers 2 --grad-compression fp16 --data synthetic --epochs 2 --train-limit 1024 --test-limit 256',
  ];
  static override flags = {
    size: sizeFlag,
    epochs: Flags.integer({char: 'e', description: 'Epochs to train.', default: 20}),
    'batch-size': Flags.integer({description: 'Global batch size (the seed: 128).', default: 128}),
    lr: Flags.string({description: 'Initial learning rate.', default: '0.1'}),
    momentum: Flags.string({description: 'SGD momentum.', default: '0.9'}),
    'weight-decay': Flags.string({description: 'SGD weight decay (applied to every parameter, as in the seed).', default: '5e-4'}),
    scheduler: Flags.string({description: 'LR schedule, stepped per epoch: plateau (the seed), multistep, cosine, constant.', options: [...SCHEDULERS], default: 'plateau'}),
    data: Flags.string({description: 'Dataset: cifar10 (needs `dtrain data download`) or synthetic (generated, offline).', options: [...DATA_SOURCES], default: 'cifar10'}),
    'data-dir': dataDirFlag,
    'train-limit': Flags.integer({description: 'Use only the first N training images.'}),
    'test-limit': Flags.integer({description: 'Use only the first N test images.'}),
    seed: Flags.integer({description: 'Seed of initialisation, data order and augmentation.', default: 0}),
    backend: backendFlag,
    'require-backend': requireBackendFlag,
    precision: precisionFlag,
    'run-dir': Flags.string({description: 'Where history and checkpoints go (default runs/<time>).'}),
    workers: Flags.integer({char: 'w', description: 'Data-parallel workers: the global batch is split over them, gradients averaged over a ZeroMQ ring. Without --coordinator, a local coordinator and N worker processes are started for the job and stopped afterwards. 1 (without --coordinator, --checkpoint-dir or --resume) trains in this process.', default: 1}),
    coordinator: Flags.string({char: 'c', description: 'Submit to a running coordinator HOST:PORT (dtrain cluster up / dtrain coordinator) instead of starting one.'}),
    ...coordinatorSecurityFlags,
    'checkpoint-dir': Flags.string({description: 'Cluster runs: where the coordinator writes a checkpoint every epoch (default RUN_DIR; a path on the coordinator\'s machine).'}),
    'metrics-port': Flags.integer({
      description: "Local cluster only: the coordinator's /metrics port, worker i takes it + 1 + i (9400 gives the documented ports that deploy/prometheus/prometheus.local.yml scrapes). 0: free ports, so concurrent runs never collide.",
      default: 0,
      min: 0,
      max: 65535,
    }),
    resume: Flags.boolean({description: 'Cluster runs: continue from the latest valid checkpoint in --checkpoint-dir at the next epoch (a damaged one is refused and the previous epoch used).', default: false}),
    'keep-checkpoints': Flags.integer({description: 'Cluster runs: keep the checkpoints of the K newest epochs in --checkpoint-dir, delete older ones.', default: DEFAULT_KEEP_CHECKPOINTS}),
    elastic: Flags.boolean({
      description: 'Cluster runs: when a worker is lost the job continues with the others (the step in flight is redone, the rest of the epoch re-sharded with the same global batch). --no-elastic fails the job instead.',
      default: true,
      allowNo: true,
    }),
    'grad-compression': Flags.string({
      description:
        'Cluster runs (--workers ≥ 2): what the gradient all-reduce sends between workers. none: float64 partial sums, the exactly rounded mean (N workers equal one process bit for bit). fp16: IEEE half precision both ways (half of the bytes of none with 2 workers, heading for a third with many; each mean within a few fp16 roundings, the same bits on every worker; a gradient beyond ±65504 fails the step). BN statistics are always averaged exactly.',
      options: [...COMPRESSIONS],
      default: 'none',
    }),
    'min-workers': Flags.integer({description: 'Cluster runs: with fewer workers left the job pauses until workers register (they join with the current weights), at most --rejoin-timeout seconds.', default: 1}),
    'rejoin-timeout': Flags.integer({description: 'Cluster runs: seconds a job paused for --min-workers waits before it fails (its checkpoints stay).', default: 120}),
  };

  async run(): Promise<LocalRunResult | ClusterRunResult> {
    const {flags} = await this.parse(RunCommand);
    const size = parseModelSize(flags.size);
    const lr = Number(flags.lr);
    const momentum = Number(flags.momentum);
    const weightDecay = Number(flags['weight-decay']);
    check(flags.epochs >= 1, `--epochs must be at least 1, got ${flags.epochs}`, 'e.g. --epochs 20');
    check(flags['batch-size'] >= 1, `--batch-size must be at least 1, got ${flags['batch-size']}`, 'the seed uses --batch-size 128');
    check(Number.isFinite(lr) && lr > 0, `--lr must be a positive number, got ${flags.lr}`, 'the seed uses --lr 0.1');
    check(Number.isFinite(momentum) && momentum >= 0 && momentum < 1, `--momentum must be in [0, 1), got ${flags.momentum}`, 'the seed uses --momentum 0.9');
    check(Number.isFinite(weightDecay) && weightDecay >= 0, `--weight-decay must be a non-negative number, got ${flags['weight-decay']}`, 'the seed uses --weight-decay 5e-4');
    check(flags.workers >= 1, `--workers must be at least 1, got ${flags.workers}`, 'e.g. --workers 2');
    check(flags['batch-size'] >= flags.workers, `--batch-size (${flags['batch-size']}) must be at least --workers (${flags.workers})`, 'each worker needs at least one image per step');
    check(flags['keep-checkpoints'] >= 1, `--keep-checkpoints must be at least 1, got ${flags['keep-checkpoints']}`, `e.g. --keep-checkpoints ${DEFAULT_KEEP_CHECKPOINTS}`);
    check(flags['min-workers'] >= 1 && flags['min-workers'] <= flags.workers, `--min-workers must be between 1 and --workers (${flags.workers}), got ${flags['min-workers']}`, 'e.g. --workers 3 --min-workers 2');
    check(flags['rejoin-timeout'] >= 1, `--rejoin-timeout must be at least 1 second, got ${flags['rejoin-timeout']}`, 'the default is 120');
    check(!flags.resume || Boolean(flags['checkpoint-dir'] ?? flags['run-dir']), '--resume needs the directory of the checkpoint to continue from', 'pass --checkpoint-dir DIR (or the --run-dir of the run)');
    check(flags['grad-compression'] === 'none' || flags.workers >= 2, `--grad-compression ${flags['grad-compression']} needs --workers 2 or more: with one worker no gradient travels`, 'e.g. --workers 2 --grad-compression fp16');
    const runDir = flags['run-dir'] ?? join('runs', new Date().toISOString().replaceAll(':', '-').replace(/\..*/, ''));
    if (flags.workers > 1 || flags.coordinator || flags.resume || flags['checkpoint-dir']) {
      return this.runCluster(flags, {size, lr, momentum, weightDecay, runDir});
    }
    const result = await runLocal(
      {...sharedRunOptions(flags), size, lr, momentum, weightDecay, runDir},
      {
        onStart: ({backend, precision, trainCount, testCount, source}) => {
          this.progress(`dtrain: ${describeBackend(backend)}; precision ${precision}`);
          this.progress(`dtrain: ShuffleNetV2 size ${size}, ${trainCount} train / ${testCount} test images from ${source}, batch ${flags['batch-size']}, run dir ${runDir}`);
        },
        onStep: stepProgressPrinter((line) => this.progress(line)),
        onEpoch: (r) => this.log(formatEpochLine({...r, trainAcc: r.trainAccuracy, testAcc: r.testAccuracy}, flags.epochs)),
      },
    );
    this.log('');
    this.log(formatPerClassTable(result.final.perClassByName));
    this.log(`\nfinal test accuracy ${(100 * result.final.accuracy).toFixed(2)}% (${result.final.correct}/${result.final.count}); history and checkpoints in ${runDir}`);
    return {...result, epochs: result.epochs.map((e) => ({...e, trainAcc: e.trainAccuracy, testAcc: e.testAccuracy})), workers: 1, testAcc: result.final.accuracy, perClassAcc: result.final.perClassByName, checkpoint: result.epochs.at(-1)?.checkpoint ?? ''} as LocalRunResult;
  }

  private async runCluster(flags: Interfaces.InferredFlags<typeof RunCommand.flags>, common: {size: ModelSize; lr: number; momentum: number; weightDecay: number; runDir: string}): Promise<ClusterRunResult> {
    const {runDir} = common;
    const checkpointDir = flags['checkpoint-dir'] ?? runDir;
    const printStep = stepProgressPrinter((line) => this.progress(line));
    const result = await runOnCluster(
      {
        ...sharedRunOptions(flags),
        ...common,
        workers: flags.workers,
        coordinator: flags.coordinator,
        security: flags.coordinator ? await resolveClientSecurity({tokenFile: flags['token-file'], tlsCa: flags['tls-ca']}, () => localClusterToken(flags.coordinator!)) : undefined,
        metricsPort: flags['metrics-port'],
        checkpointDir,
        resume: flags.resume,
        keepCheckpoints: flags['keep-checkpoints'],
        elastic: flags.elastic,
        minWorkers: flags['min-workers'],
        rejoinTimeoutMs: flags['rejoin-timeout'] * 1000,
        gradCompression: flags['grad-compression'] as Compression,
      },
      {
        onLocalCluster: (c) => this.progress(`dtrain: started a local cluster at ${c.address} (pids ${c.pids.join(', ')}; logs in ${c.logDir})`),
        onAccepted: (a) => {
          for (const note of a.checkpointNotes) this.progress(`dtrain: ${note}`);
          const w = a.workers[0];
          this.progress(`dtrain: job ${a.jobId} on ${a.local ? 'a local cluster' : 'the coordinator'} at ${a.address}: ${a.workers.length} worker${a.workers.length === 1 ? '' : 's'}, backend ${w?.backend} on ${w?.device}`);
          this.progress(
            `dtrain: ShuffleNetV2 size ${common.size}, ${a.trainCount} train / ${a.testCount} test images from ${a.source}, global batch ${flags['batch-size']} = ${a.rankBatch.join(' + ')}, ${a.stepsPerEpoch} steps/epoch, gradients ${flags['grad-compression'] === 'fp16' ? 'as fp16 between workers' : 'exact (float64 sums)'}, run dir ${runDir}, checkpoints in ${checkpointDir}` +
              (a.startEpoch > 0 ? `, resuming at epoch ${a.startEpoch + 1}` : ''),
          );
          const urls = a.workers.map((w) => w.metricsUrl).filter(Boolean);
          if (urls.length > 0) this.progress(`dtrain: worker metrics at ${urls.join(', ')}`);
        },
        onStep: (p) => printStep({...p, imagesPerSec: p.images / Math.max(p.seconds, 1e-9)}),
        onEpoch: (r) => this.log(formatEpochLine(r, flags.epochs)),
        onRegrouped: (r) => this.progress(formatRegroupLine(r)),
        onPaused: (p) => this.progress(`dtrain: job paused in epoch ${p.epoch + 1}: waiting for workers: have ${p.have}, need ${p.need}, timeout ${p.timeoutS} s (start one with \`dtrain worker --coordinator ADDRESS\`)`),
      },
    );
    if (process.exitCode === 130) throw new UserError('interrupted; the local cluster was stopped', {exitCode: 130});
    this.log('');
    this.log(formatPerClassTable(result.perClassAcc));
    this.log(`\nfinal test accuracy ${(100 * result.testAcc).toFixed(2)}% with ${result.workers} workers; history in ${runDir}, checkpoint ${result.checkpoint}`);
    return result;
  }
}

/** The options both paths take straight from the flags. */
function sharedRunOptions(flags: Interfaces.InferredFlags<typeof RunCommand.flags>) {
  return {
    epochs: flags.epochs,
    batchSize: flags['batch-size'],
    scheduler: flags.scheduler,
    data: flags.data as DataSource,
    dataDir: flags['data-dir'],
    trainLimit: flags['train-limit'],
    testLimit: flags['test-limit'],
    seed: flags.seed,
    backend: flags.backend as BackendChoice,
    requireBackend: flags['require-backend'],
    precision: flags.precision as Precision,
  };
}
