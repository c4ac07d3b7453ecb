import { Bench, hrtimeNow } from 'tinybench';

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

export interface LatencyOptions {
  /** Minimum time spent measuring, in ms. */
  timeMs: number;
  /** Minimum number of samples (p999 needs >= 1000 to mean anything). */
  minSamples?: number;
  /**
   * Operations per sample. Operations far shorter than the clock's own cost (~30-50 ns a reading)
   * are timed in batches, and each sample is the batch's mean per operation.
   */
  batch?: number;
  /**
   * Yield to the event loop (untimed) before every Nth sample. A loop of awaited calls that settle
   * in microtasks never lets timers or I/O run; between a daemon's requests, the flusher does run.
   */
  yieldEvery?: number;
}

/** Linear-interpolated quantile of sorted values (the definition tinybench uses). */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const lower = sorted[low] as number;
  const upper = sorted[low + 1] ?? lower;
  return lower + (position - low) * (upper - lower);
}

export function summarize(valuesNs: readonly number[], batch = 1): LatencySummary {
  const sorted = Array.from(Float64Array.from(valuesNs).sort());
  const mean = sorted.reduce((sum, v) => sum + v, 0) / sorted.length;
  const [p50, p99, p999] = [0.5, 0.99, 0.999].map((q) => quantile(sorted, q)) as [number, number, number];
  return {
    samples: sorted.length,
    batch,
    mean,
    min: sorted[0] ?? Number.NaN,
    p50,
    p99,
    p999,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

export function median(values: readonly number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/** Per-operation latency of `op` with tinybench: warm-up, then samples until `timeMs` and `minSamples`. */
export async function measureAsync(
  op: () => Promise<unknown>,
  options: LatencyOptions,
): Promise<LatencySummary> {
  const batch = options.batch ?? 1;
  const every = options.yieldEvery ?? 0;
  let samples = 0;
  return run(
    options,
    async () => {
      const start = hrtimeNow();
      for (let i = 0; i < batch; i++) await op();
      return { overriddenDuration: (hrtimeNow() - start) / batch };
    },
    every ? () => (++samples % every === 0 ? yieldToEventLoop() : undefined) : undefined,
  );
}

/** Where measured synchronous calls leave their results, so the JIT cannot drop the calls. */
export let sink: unknown;

/** As `measureAsync`, for a synchronous operation (no await in the timed loop). */
export async function measureSync(op: () => unknown, options: LatencyOptions): Promise<LatencySummary> {
  const batch = options.batch ?? 1;
  return run(options, () => {
    const start = hrtimeNow();
    for (let i = 0; i < batch; i++) sink = op();
    return { overriddenDuration: (hrtimeNow() - start) / batch };
  });
}

type Sample = () => { overriddenDuration: number } | Promise<{ overriddenDuration: number }>;

async function run(
  options: LatencyOptions,
  sample: Sample,
  beforeEach?: () => Promise<void> | undefined,
): Promise<LatencySummary> {
  const batch = options.batch ?? 1;
  // tinybench stops once the sample durations add up to `time`; a batched sample reports the mean
  // per operation, so the budget is divided by the batch size to keep the wall time as asked.
  const bench = new Bench({
    now: hrtimeNow,
    time: options.timeMs / batch,
    iterations: options.minSamples ?? 64,
    warmupTime: Math.min(250, options.timeMs / 4) / batch,
    warmupIterations: 16,
    throws: true,
    retainSamples: true,
  });
  bench.add('op', sample, beforeEach ? { beforeEach } : {});
  await bench.run();
  const result = bench.tasks[0]?.result;
  if (result?.state !== 'completed') throw new Error(`benchmark ended ${result?.state ?? 'with no result'}`);
  return summarize(
    (result.latency.samples ?? []).map((ms) => ms * 1e6),
    batch,
  );
}

/** Collects garbage before a measurement (the bench runs with --expose-gc). */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * `callers` concurrent loops sharing `total` operations: the rate and each operation's latency.
 * With `yieldEvery`, each caller yields to the event loop (timed) after every N of its operations,
 * as request handlers do, so background work runs inside the measured window.
 */
export async function concurrentLoad(
  callers: number,
  total: number,
  op: (i: number) => Promise<unknown>,
  yieldEvery = 0,
): Promise<{ opsPerSec: number; elapsedMs: number; latencyNs: LatencySummary }> {
  const latencies = new Float64Array(total);
  let next = 0;
  const worker = async () => {
    for (let done = 1, i = next++; i < total; done++, i = next++) {
      const start = hrtimeNow();
      await op(i);
      latencies[i] = (hrtimeNow() - start) * 1e6;
      if (yieldEvery && done % yieldEvery === 0) await yieldToEventLoop();
    }
  };
  const started = hrtimeNow();
  await Promise.all(Array.from({ length: callers }, worker));
  const elapsedMs = hrtimeNow() - started;
  return { opsPerSec: (total / elapsedMs) * 1000, elapsedMs, latencyNs: summarize(Array.from(latencies)) };
}
