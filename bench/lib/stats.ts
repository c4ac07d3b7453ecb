/** Latency distribution of one measured operation, in nanoseconds per operation. */
export interface LatencySummary {
  samples: number;
  /** Operations timed together per sample (1 = every operation timed on its own). */
  batch: number;
  mean: number;
  min: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** Linear-interpolated quantile of sorted values (same definition tinybench uses). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const lower = sorted[low] as number;
  const upper = sorted[low + 1];
  return upper === undefined ? lower : lower + (position - low) * (upper - lower);
}

/** Summarises per-operation latencies given in nanoseconds. */
export function summarize(valuesNs: readonly number[], batch = 1): LatencySummary {
  const sorted = Float64Array.from(valuesNs).sort();
  const list = Array.from(sorted);
  let sum = 0;
  for (const v of list) sum += v;
  return {
    samples: list.length,
    batch,
    mean: list.length ? sum / list.length : Number.NaN,
    min: list[0] ?? Number.NaN,
    p50: quantileSorted(list, 0.5),
    p99: quantileSorted(list, 0.99),
    p999: quantileSorted(list, 0.999),
    max: list.at(-1) ?? Number.NaN,
  };
}

export function median(values: readonly number[]): number {
  return quantileSorted(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/** `1234.5` ns -> `1.23 µs`. */
export function formatNs(ns: number): string {
  if (!Number.isFinite(ns)) return 'n/a';
  if (ns < 1_000) return `${ns.toFixed(ns < 10 ? 2 : ns < 100 ? 1 : 0)} ns`;
  if (ns < 1_000_000) return `${trim(ns / 1_000)} µs`;
  if (ns < 1_000_000_000) return `${trim(ns / 1_000_000)} ms`;
  return `${trim(ns / 1_000_000_000)} s`;
}

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return 'n/a';
  if (perSecond >= 1_000_000) return `${trim(perSecond / 1_000_000)} M/s`;
  if (perSecond >= 1_000) return `${trim(perSecond / 1_000)} k/s`;
  return `${trim(perSecond)} /s`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a';
  if (Math.abs(bytes) >= 2 ** 20) return `${trim(bytes / 2 ** 20)} MiB`;
  if (Math.abs(bytes) >= 2 ** 10) return `${trim(bytes / 2 ** 10)} KiB`;
  return `${Math.round(bytes)} B`;
}

export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return 'n/a';
  return `${ratio >= 100 ? ratio.toFixed(0) : ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}×`;
}

function trim(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}
