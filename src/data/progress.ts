/** Human-readable transfer progress ("12.3 MB / 162.6 MB (7.6%) 4.1 MB/s"). */

export interface TransferProgress {
  /** Bytes of the file on disk so far (including what an earlier, resumed attempt fetched). */
  received: number;
  /** Expected size in bytes, when the server said. */
  total?: number;
  /** Average over this attempt. */
  bytesPerSecond: number;
  done: boolean;
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

export function formatProgress(p: TransferProgress): string {
  const rate = `${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s`;
  if (p.total && p.total > 0) {
    const pct = ((100 * p.received) / p.total).toFixed(1);
    return `${formatBytes(p.received)} / ${formatBytes(p.total)} (${pct}%) ${rate}`;
  }
  return `${formatBytes(p.received)} ${rate}`;
}
