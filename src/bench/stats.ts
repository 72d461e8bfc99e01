/** The median of a list of timings (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** a / b, or null when there is no b to compare with (PyTorch absent). */
export function ratio(a: number, b: number | null | undefined): number | null {
  return b === null || b === undefined || !(b > 0) ? null : a / b;
}
