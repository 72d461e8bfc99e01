import type {ServerDuplexStream} from '@grpc/grpc-js';

import type {CoordinatorCommand, RegisterRequest, WorkerInfo, WorkerMessage} from '../gen/dtrain.js';

export type WorkerState = 'registered' | 'idle' | 'busy' | 'dead';

export interface WorkerEntry {
  id: string;
  info: RegisterRequest;
  state: WorkerState;
  lastSeen: number;
  registeredAt: number;
  stream?: ServerDuplexStream<WorkerMessage, CoordinatorCommand>;
  jobId?: string;
  rank?: number;
  /** Receives session messages while the worker is in a job. */
  onMessage?: (msg: WorkerMessage) => void;
  /** Told when the worker dies or its session ends while in a job. */
  onLost?: (why: string) => void;
}

/** Workers known to the coordinator, their liveness (heartbeats) and their session streams. */
export class WorkerRegistry {
  private readonly workers = new Map<string, WorkerEntry>();
  private counter = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly heartbeatTimeoutMs: number,
    private readonly log: (line: string) => void,
  ) {}

  register(info: RegisterRequest): WorkerEntry {
    let id = info.workerId || `worker-${++this.counter}`;
    const existing = this.workers.get(id);
    if (existing && existing.state !== 'dead') id = `${id}-${++this.counter}`;
    const now = Date.now();
    const entry: WorkerEntry = {id, info, state: 'registered', lastSeen: now, registeredAt: now};
    this.workers.set(id, entry);
    return entry;
  }

  get(id: string): WorkerEntry | undefined {
    return this.workers.get(id);
  }

  all(): WorkerEntry[] {
    return [...this.workers.values()];
  }

  idle(): WorkerEntry[] {
    return this.all()
      .filter((w) => w.state === 'idle')
      .sort((a, b) => a.registeredAt - b.registeredAt);
  }

  /** For the metrics: every worker the registry holds (it keeps dead ones) and those not dead with a fresh heartbeat. */
  counts(now = Date.now()): {registered: number; alive: number} {
    const all = this.all();
    return {registered: all.length, alive: all.filter((w) => w.state !== 'dead' && now - w.lastSeen <= this.heartbeatTimeoutMs).length};
  }

  /** Seconds since each worker was last heard from (dead ones included: their age keeps growing). */
  *heartbeatAges(now = Date.now()): Iterable<readonly [string, number]> {
    for (const w of this.workers.values()) yield [w.id, (now - w.lastSeen) / 1000] as const;
  }

  touch(entry: WorkerEntry): void {
    entry.lastSeen = Date.now();
  }

  /** Marks a worker dead (silent, or its session ended) and tells its job. */
  kill(entry: WorkerEntry, why: string): void {
    if (entry.state === 'dead') return;
    entry.state = 'dead';
    this.log(`worker ${entry.id} is dead: ${why}`);
    const lost = entry.onLost;
    entry.onLost = undefined;
    entry.onMessage = undefined;
    try {
      // If the process is only stopped (SIGSTOP, a frozen VM), it reads this on waking and leaves.
      entry.stream?.write({stop: {jobId: entry.jobId ?? '', reason: `declared dead: ${why}`}});
      entry.stream?.end();
    } catch {
      // already closed
    }
    entry.stream = undefined;
    lost?.(why);
  }

  startWatchdog(): void {
    const period = Math.min(500, this.heartbeatTimeoutMs / 4);
    let lastTick = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      // A late tick means this process's own event loop stalled (GC, a starved CPU): heartbeats that
      // arrived meanwhile still wait in its queue, so silence is judged only on a loop keeping time.
      const stalled = now - lastTick > 2 * period + 250;
      lastTick = now;
      if (stalled) return;
      for (const w of this.workers.values()) {
        if (w.state !== 'dead' && now - w.lastSeen > this.heartbeatTimeoutMs) this.kill(w, `no heartbeat for ${((now - w.lastSeen) / 1000).toFixed(1)} s (timeout ${this.heartbeatTimeoutMs / 1000} s)`);
      }
    }, period);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const w of this.workers.values()) {
      try {
        w.stream?.end();
      } catch {
        // ignore
      }
    }
  }

  describe(entry: WorkerEntry): WorkerInfo {
    return {
      workerId: entry.id,
      host: entry.info.host,
      backend: entry.info.backend,
      device: entry.info.device,
      state: entry.state === 'registered' ? 'idle' : entry.state,
      rank: entry.rank ?? 0,
      jobId: entry.jobId ?? '',
      lastHeartbeatMsAgo: Date.now() - entry.lastSeen,
      pid: entry.info.pid,
      dtrainVersion: entry.info.dtrainVersion,
      metricsUrl: entry.info.metricsUrl,
    };
  }
}
