/** The ring all-reduce: what workers and benchmarks import. */
export {AllReduceTimeoutError, COMPRESSIONS, DEFAULT_CHUNK_BYTES, DEFAULT_LINGER_MS, DEFAULT_TIMEOUT_MS, formLocalRing, NonFiniteAllReduceError, RingAllReduce} from './ring.js';
export type {AllReduceCallOptions, AllReduceTag, Compression, ReduceOp, RingOptions, RingPosition} from './ring.js';
