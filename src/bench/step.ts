
import {IMAGE_BYTES} from '../data/index.js';
import type {BackendInfo} from '../engine/backend.js';
import type {ModelSize} from '../model/architecture.js';
import {ShuffleNetV2} from '../model/shufflenetv2.js';
import {forwardMacs} from '../model/summary.js';
import {SEED_SGD, SGD} from '../optim/sgd.js';
import {Random} from '../util/random.js';
import {Trainer} from '../worker/trainer.js';

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
  times.sort((a, b) => a - b);
  const msPerStep = times[Math.floor(times.length / 2)];
  const imagesPerSec = (batch * 1000) / msPerStep;
  const macs = forwardMacs(size);
  return {backend: backend.name, device: backend.device, size, batch, steps, msPerStep, imagesPerSec, gflopsPerSec: (imagesPerSec * 3 * macs * 2) / 1e9, forwardMacsPerImage: macs};
}

