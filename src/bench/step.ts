import {IMAGE_BYTES} from '../data/index.js';
import type {BackendInfo} from '../engine/backend.js';
import type {ModelSize} from '../model/architecture.js';
import {ShuffleNetV2} from '../model/shufflenetv2.js';
import {forwardMacs} from '../model/summary.js';
import {SEED_SGD, SGD} from '../optim/sgd.js';
import {Random} from '../util/random.js';
import {Trainer} from '../worker/trainer.js';
import {type GemmPeakResult, benchGemmPeak} from './gemm.js';
import {median, ratio} from './stats.js';
import {type TorchProbe, probeTorch, torchStepTimes} from './torch.js';

export interface StepBenchResult {
  backend: string;
  device: string;
  size: ModelSize;
  batch: number;
  steps: number;
  /** Median over the timed steps. */
  msPerStep: number;
  imagesPerSec: number;
  /** ≈ 3 × forward MACs × 2 FLOP per image (forward + two backward products). */
  gflopsPerSec: number;
  forwardMacsPerImage: number;
}

/** One size of `dtrain bench step`: dtrain next to the backend's GEMM peak and PyTorch, all from one run. */
export interface StepComparison extends StepBenchResult {
  gemmPeakGflops: number;
  /** gflopsPerSec / gemmPeakGflops. */
  peakFraction: number;
  torchMsPerStep: number | null;
  torchImagesPerSec: number | null;
  /** dtrain images/s ÷ PyTorch images/s; null without PyTorch. */
  ratioToTorch: number | null;
}

export interface StepComparisonReport {
  backend: string;
  device: string;
  gemm: GemmPeakResult;
  /** Which PyTorch ran (one thread), or why none did. */
  torch: TorchProbe;
  results: StepComparison[];
}

export interface StepComparisonOptions {
  sizes: ModelSize[];
  batch: number;
  steps: number;
  warmup: number;
  /** false: skip PyTorch even where it is installed. */
  torch: boolean;
  gemmSize: number;
}

/** Images/s of forward + backward + SGD (the training step of Trainer) on random inputs. */
export async function benchStep(backend: BackendInfo, size: ModelSize, batch: number, steps: number, warmup = 2, onStep?: (i: number, ms: number) => void): Promise<StepBenchResult> {
  const model = ShuffleNetV2.create(size, 0);
  const optimizer = new SGD(SEED_SGD);
  const trainer = new Trainer(model, optimizer, {batchSize: batch, seed: 0});
  const rng = new Random(1);
  const x = Float32Array.from({length: batch * IMAGE_BYTES}, () => rng.normal());
  const labels = Int32Array.from({length: batch}, () => rng.int(10));
  const times: number[] = [];
  try {
    for (let i = 0; i < warmup + steps; i++) {
      const t0 = performance.now();
      await trainer.step(x, labels, batch);
      const ms = performance.now() - t0;
      if (i >= warmup) times.push(ms);
      onStep?.(i - warmup, ms);
    }
  } finally {
    model.dispose();
    optimizer.dispose();
  }
  const msPerStep = median(times);
  const imagesPerSec = (batch * 1000) / msPerStep;
  const macs = forwardMacs(size);
  return {backend: backend.name, device: backend.device, size, batch, steps, msPerStep, imagesPerSec, gflopsPerSec: (imagesPerSec * 3 * macs * 2) / 1e9, forwardMacsPerImage: macs};
}

/**
 * `dtrain bench step`: the backend's GEMM peak, then per size dtrain's training step and, where a
 * Python imports torch, the same model and recipe in PyTorch on one thread, one after the other
 * (never concurrently, so neither steals the other's cores).
 */
export async function benchStepComparison(backend: BackendInfo, options: StepComparisonOptions, progress: (line: string) => void = () => {}): Promise<StepComparisonReport> {
  const torch: TorchProbe = options.torch ? await probeTorch() : {available: false, reason: 'skipped (--no-torch)'};
  progress(torch.available ? `dtrain: PyTorch ${torch.version} (${torch.python}, one thread) runs the same steps` : `dtrain: PyTorch not measured: ${torch.reason}`);
  const gemm = await benchGemmPeak(options.gemmSize);
  progress(`  GEMM peak: ${options.gemmSize}³ matMul ${gemm.msMedian.toFixed(1)} ms, ${gemm.gflopsPerSec.toFixed(2)} GFLOP/s`);
  const results: StepComparison[] = [];
  for (const size of options.sizes) {
    const own = await benchStep(backend, size, options.batch, options.steps, options.warmup, (i, ms) =>
      progress(`  size ${size} ${i < 0 ? 'warm-up' : `step ${i + 1}/${options.steps}`}: ${ms.toFixed(0)} ms`),
    );
    let torchMsPerStep: number | null = null;
    if (torch.available) {
      progress(`  size ${size} PyTorch: ${options.warmup} warm-up + ${options.steps} steps`);
      torchMsPerStep = median((await torchStepTimes(torch.python, size, options.batch, options.steps, options.warmup)).times);
    }
    const torchImagesPerSec = torchMsPerStep === null ? null : (options.batch * 1000) / torchMsPerStep;
    results.push({
      ...own,
      gemmPeakGflops: gemm.gflopsPerSec,
      peakFraction: own.gflopsPerSec / gemm.gflopsPerSec,
      torchMsPerStep,
      torchImagesPerSec,
      ratioToTorch: ratio(own.imagesPerSec, torchImagesPerSec),
    });
  }
  return {backend: backend.name, device: backend.device, gemm, torch, results};
}
