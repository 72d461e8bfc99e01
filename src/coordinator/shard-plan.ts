import {epochSeed} from '../worker/trainer.js';
import {Random} from '../util/random.js';

export interface ShardPlanOptions {
  /** Training images in the dataset. */
  count: number;
  worldSize: number;
  /** The epoch's order, when it is not the (seed, epoch) permutation: what earlier segments left (see continuedPlan). */
  order?: Uint32Array;
  /** The global batch (the seed: 128), split over the ranks like nn.DataParallel. */
  globalBatch: number;
  seed: number;
  epoch: number;
  /** Default true (the seed's DataLoader shuffles); false keeps the natural order. */
  shuffle?: boolean;
}

/**
 * Which images each rank trains on in one epoch, and in which steps.
 *
 * Sharding — torch DistributedSampler semantics: one permutation of 0..count−1 per epoch, seeded by
 * (seed, epoch) and therefore identical on every rank; padded by repeating its head up to a multiple
 * of worldSize so every rank gets the same shard size; rank r takes positions r, r+N, r+2N, …
 *
 * Batch split — nn.DataParallel semantics: the global batch B is split over the N ranks, B/N each;
 * when N does not divide B, ranks 0..(B mod N)−1 take one image more. Step s of rank r is
 * shard_r[s·b_r, (s+1)·b_r) (drop_last=False, so the last step may be short or even empty for a rank
 * with the larger batch). steps = ceil(shardSize / ⌊B/N⌋), the same on every rank.
 *
 * Gradient mean — a rank's gradient is the mean over its own n_r images. The replicas must apply
 * the mean over all Σn images of the step (what one process on the whole batch computes), so each
 * rank scales its gradient by n_r·N/Σn before the all-reduce mean: mean_r(g_r·n_r·N/Σn) = Σ n_r·g_r / Σn.
 * With equal slices the factor is exactly 1 (no rounding added); an empty slice contributes zeros.
 */
export class ShardPlan {
  readonly count: number;
  readonly worldSize: number;
  readonly globalBatch: number;
  /** Padded length: the smallest multiple of worldSize ≥ count. */
  readonly total: number;
  readonly shardSize: number;
  readonly steps: number;
  readonly order: Uint32Array;
  private readonly padded: Uint32Array;

  constructor(options: ShardPlanOptions) {
    const {worldSize, globalBatch} = options;
    const count = options.order?.length ?? options.count;
    if (!(Number.isInteger(worldSize) && worldSize >= 1)) throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
    if (!(Number.isInteger(count) && count >= (options.order ? 0 : 1))) throw new RangeError(`count must be a positive integer, got ${count}`);
    if (!(Number.isInteger(globalBatch) && globalBatch >= worldSize)) {
      throw new RangeError(`the global batch (${globalBatch}) must be at least the number of workers (${worldSize})`);
    }
    this.count = count;
    this.worldSize = worldSize;
    this.globalBatch = globalBatch;
    this.order = options.order ?? (options.shuffle === false ? Uint32Array.from({length: count}, (_, i) => i) : new Random(epochSeed(options.seed, options.epoch, 'order')).permutation(count));
    this.total = Math.ceil(count / worldSize) * worldSize;
    this.padded = new Uint32Array(this.total);
    for (let i = 0; i < this.total; i++) this.padded[i] = this.order[i % count];
    this.shardSize = this.total / worldSize;
    this.steps = Math.ceil(this.shardSize / Math.floor(globalBatch / worldSize));
  }

  /** Per-rank batch b_r: ⌊B/N⌋, plus one for the first B mod N ranks. */
  rankBatch(rank: number): number {
    return Math.floor(this.globalBatch / this.worldSize) + (rank < this.globalBatch % this.worldSize ? 1 : 0);
  }

  /** The dataset indices of rank r's shard for the whole epoch, in training order. */
  shard(rank: number): Uint32Array {
    this.checkRank(rank);
    const out = new Uint32Array(this.shardSize);
    for (let k = 0; k < this.shardSize; k++) out[k] = this.padded[rank + k * this.worldSize];
    return out;
  }

  /** The dataset indices rank r trains on in step s (possibly empty at the end of the epoch). */
  stepIndices(rank: number, step: number, shard = this.shard(rank)): Uint32Array {
    const b = this.rankBatch(rank);
    const start = Math.min(step * b, this.shardSize);
    return shard.subarray(start, Math.min(start + b, this.shardSize));
  }

  /** Images per rank in step s. */
  stepCounts(step: number): number[] {
    return Array.from({length: this.worldSize}, (_, r) => {
      const b = this.rankBatch(r);
      return Math.max(0, Math.min(b, this.shardSize - step * b));
    });
  }

  /** The factor rank r multiplies its mean gradient by before the all-reduce mean (see the class comment). */
  gradientScale(rank: number, step: number): number {
    const counts = this.stepCounts(step);
    const sum = counts.reduce((a, b) => a + b, 0);
    if (counts.every((c) => c === counts[0])) return 1;
    return (counts[rank] * this.worldSize) / sum;
  }

  /**
   * What steps ≥ stepsDone would still have trained: the padded positions not yet consumed, in
   * permutation order (padding included, so no image of the schedule is dropped).
   */
  remaining(stepsDone: number): Uint32Array {
    const out: number[] = [];
    const consumed = Array.from({length: this.worldSize}, (_, r) => Math.min(this.shardSize, stepsDone * this.rankBatch(r)));
    for (let p = 0; p < this.total; p++) if (Math.floor(p / this.worldSize) >= consumed[p % this.worldSize]) out.push(this.padded[p]);
    return Uint32Array.from(out);
  }

  private checkRank(rank: number): void {
    if (!(Number.isInteger(rank) && rank >= 0 && rank < this.worldSize)) throw new RangeError(`rank ${rank} outside 0..${this.worldSize - 1}`);
  }
}

/** A part of an epoch trained with one world size; a regroup ends it. */
export interface EpochSegment {
  worldSize: number;
  /** Steps completed in it. */
  steps: number;
}

/**
 * The plan of the rest of an epoch after `segments` (earlier parts, each ended by a regroup): the
 * epoch's permutation as the first plan had it, minus what each segment's completed steps consumed,
 * sharded again over `worldSize` ranks with the same global batch. No segments: the whole epoch.
 */
export function continuedPlan(base: Omit<ShardPlanOptions, 'worldSize' | 'order'>, segments: readonly EpochSegment[], worldSize: number): ShardPlan {
  let plan = new ShardPlan({...base, worldSize: segments[0]?.worldSize ?? worldSize});
  segments.forEach((segment, i) => {
    plan = new ShardPlan({...base, order: plan.remaining(segment.steps), worldSize: segments[i + 1]?.worldSize ?? worldSize});
  });
  return plan;
}

/** Test-set sharding for distributed eval: rank r takes r, r+N, … (no padding: every image counted once). */
export function evalShard(count: number, rank: number, worldSize: number): Uint32Array {
  const out: number[] = [];
  for (let i = rank; i < count; i += worldSize) out.push(i);
  return Uint32Array.from(out);
}
