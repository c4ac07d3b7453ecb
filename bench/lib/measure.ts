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
   * Operations per sample. Operations far shorter than a clock reading (~30-50 ns) are timed in
   * batches, each sample being the batch's mean per operation.
   */
  batch?: number;
  /**
   * Yield to the event loop (untimed) before every Nth sample: a loop of awaited calls that settle
   * in microtasks never lets timers or I/O run, but the flusher runs between a daemon's requests.
   */
  yieldEvery?: number;
}

/** Linear-interpolated quantile of sorted values (the definition tinybench uses). */
function quantile(sorted: readonly number[], q: number): number {
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const lower = sorted[low] ?? Number.NaN;
  return lower + (position - low) * ((sorted[low + 1] ?? lower) - lower);
}

export function summarize(valuesNs: readonly number[]): LatencySummary {
  const sorted = Array.from(Float64Array.from(valuesNs).sort());
  const [p50, p99, p999] = [0.5, 0.99, 0.999].map((q) => quantile(sorted, q)) as [number, number, number];
  const mean = sorted.reduce((sum, v) => sum + v, 0) / sorted.length;
  return {
    samples: sorted.length,
    batch: 1,
    mean,
    min: sorted[0] ?? Number.NaN,
    p50,
    p99,
    p999,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

export const median = (values: readonly number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );

/** Where measured synchronous calls leave their results, so the JIT cannot drop the calls. */
export let sink: unknown;

export function measureSync(op: () => unknown, options: LatencyOptions): Promise<LatencySummary> {
  const batch = options.batch ?? 1;
  return measure(options, () => {
    const start = hrtimeNow();
    for (let i = 0; i < batch; i++) sink = op();
    return { overriddenDuration: (hrtimeNow() - start) / batch };
  });
}

export function measureAsync(op: () => Promise<unknown>, options: LatencyOptions): Promise<LatencySummary> {
  const batch = options.batch ?? 1;
  return measure(options, async () => {
    const start = hrtimeNow();
    for (let i = 0; i < batch; i++) await op();
    return { overriddenDuration: (hrtimeNow() - start) / batch };
  });
}

/** tinybench: warm-up, then samples until both `timeMs` and `minSamples` are reached. */
async function measure(
  options: LatencyOptions,
  sample: () => { overriddenDuration: number } | Promise<{ overriddenDuration: number }>,
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
  });
  let samples = 0;
  const every = options.yieldEvery ?? 0;
  const beforeEach = () => (every && ++samples % every === 0 ? yieldToEventLoop() : undefined);
  bench.add('op', sample, { beforeEach });
  await bench.run();
  const result = bench.tasks[0]?.result;
  if (result?.state !== 'completed') throw new Error(`benchmark ended ${result?.state ?? 'with no result'}`);
  const { latency: l } = result;
  const ns = (ms: number) => ms * 1e6; // tinybench reports milliseconds
  return {
    samples: l.samplesCount,
    batch,
    mean: ns(l.mean),
    min: ns(l.min),
    p50: ns(l.p50),
    p99: ns(l.p99),
    p999: ns(l.p999),
    max: ns(l.max),
  };
}

/** Collects garbage before a measurement (the bench runs with --expose-gc). */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * `callers` concurrent loops sharing `total` operations: the rate, and each operation's latency.
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
  const caller = async () => {
    for (let done = 1, i = next++; i < total; done++, i = next++) {
      const start = hrtimeNow();
      await op(i);
      latencies[i] = (hrtimeNow() - start) * 1e6;
      if (yieldEvery && done % yieldEvery === 0) await yieldToEventLoop();
    }
  };
  const started = hrtimeNow();
  await Promise.all(Array.from({ length: callers }, caller));
  const elapsedMs = hrtimeNow() - started;
  return { opsPerSec: (total / elapsedMs) * 1000, elapsedMs, latencyNs: summarize(Array.from(latencies)) };
}
