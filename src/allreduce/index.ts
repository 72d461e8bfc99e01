/** The ring all-reduce: what workers and benchmarks import. */
export {AllReduceTimeoutError, DEFAULT_CHUNK_BYTES, DEFAULT_LINGER_MS, DEFAULT_TIMEOUT_MS, formLocalRing, RingAllReduce} from './ring.js';
export type {AllReduceTag, ReduceOp, RingOptions, RingPosition} from './ring.js';
