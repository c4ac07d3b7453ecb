import { pino } from 'pino';
import { Bench, hrtimeNow } from 'tinybench';
import type { PgEnv } from '../support/pg-env.js';
import type { Progress } from './progress.js';
import { type LatencySummary, summarize } from './stats.js';

/** The caches under test log nothing: their warnings (e.g. closing with writes pending) are expected here. */
export const silentLogger = pino({ level: 'silent' });

export interface BenchContext {
  quick: boolean;
  progress: Progress;
  /** PostgreSQL + gateway, or undefined when run with `--no-pg` or when they failed to start. */
  pg: PgEnv | undefined;
  /** Why `pg` is undefined. */
  pgUnavailable?: string;
  /** A scratch directory for this run (outbox files), removed at the end. */
  tmpDir: string;
}

export interface LatencyOptions {
  /** Minimum time spent measuring, in ms. */
  timeMs: number;
  /** Minimum number of samples (p999 needs >= 1000 to mean anything). */
  minSamples?: number;
  /**
   * Operations per sample. Operations far shorter than the clock's overhead (~30-50 ns per
   * reading) are timed in batches and each sample is the batch's mean per operation.
   */
  batch?: number;
  warmupMs?: number;
  /**
   * Yield to the event loop (`setImmediate`, untimed) before every Nth sample. A loop of awaited
   * calls that all settle in microtasks never lets timers or I/O run; a daemon's requests do. With
   * this, background work (the flusher's timer and its store I/O) runs between samples as it would
   * between requests.
   */
  yieldEvery?: number;
}

/**
 * Per-operation latency of an async operation with tinybench: warm-up, then samples until both
 * `timeMs` and `minSamples` are reached. Returns nanoseconds per operation.
 */
export async function measureAsync(
  op: () => Promise<unknown>,
  options: LatencyOptions,
): Promise<LatencySummary> {
  const batch = options.batch ?? 1;
  const bench = benchFor(options, batch);
  const every = options.yieldEvery;
  let samples = 0;
  bench.add(
    'op',
    async () => {
      const start = hrtimeNow();
      for (let i = 0; i < batch; i++) await op();
      return { overriddenDuration: (hrtimeNow() - start) / batch };
    },
    every ? { beforeEach: () => (++samples % every === 0 ? yieldToEventLoop() : undefined) } : {},
  );
  return run(bench, batch);
}

/** As `measureAsync`, for a synchronous operation (no promise or await in the loop). */
export async function measureSync(op: () => unknown, options: LatencyOptions): Promise<LatencySummary> {
  const batch = options.batch ?? 1;
  const bench = benchFor(options, batch);
  let sink: unknown;
  bench.add('op', () => {
    const start = hrtimeNow();
    for (let i = 0; i < batch; i++) sink = op();
    return { overriddenDuration: (hrtimeNow() - start) / batch };
  });
  const summary = await run(bench, batch);
  if (sink === Symbol.for('never')) console.error('unreachable');
  return summary;
}

/**
 * tinybench stops once the sum of the sample durations reaches `time`; a batched sample reports the
 * per-operation mean, so the budget is divided by the batch size to keep the wall time as asked.
 */
function benchFor(options: LatencyOptions, batch: number): Bench {
  return new Bench({
    now: hrtimeNow,
    time: options.timeMs / batch,
    iterations: options.minSamples ?? 64,
    warmupTime: (options.warmupMs ?? Math.min(250, options.timeMs / 4)) / batch,
    warmupIterations: 16,
    throws: true,
    retainSamples: true,
  });
}

async function run(bench: Bench, batch: number): Promise<LatencySummary> {
  await bench.run();
  const result = bench.tasks[0]?.result;
  if (result?.state === 'errored') throw result.error;
  if (result?.state !== 'completed') throw new Error(`benchmark ended ${result?.state ?? 'with no result'}`);
  // tinybench reports milliseconds per sample.
  return summarize(
    (result.latency.samples ?? []).map((ms) => ms * 1e6),
    batch,
  );
}

/** Collects GC before a measurement when the process runs with --expose-gc. */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Runs `callers` concurrent loops sharing `total` operations; returns the rate and each operation's
 * latency. With `yieldEvery`, each caller yields to the event loop (timed) after every N of its
 * operations, so background work runs inside the measured window.
 */
export async function concurrentLoad(
  callers: number,
  total: number,
  op: (i: number) => Promise<unknown>,
  options: { yieldEvery?: number } = {},
): Promise<{ opsPerSec: number; elapsedMs: number; latencyNs: LatencySummary }> {
  const latencies = new Float64Array(total);
  const every = options.yieldEvery ?? 0;
  let next = 0;
  const worker = async () => {
    for (let done = 1; ; done++) {
      const i = next++;
      if (i >= total) return;
      const start = hrtimeNow();
      await op(i);
      latencies[i] = (hrtimeNow() - start) * 1e6;
      if (every && done % every === 0) await yieldToEventLoop();
    }
  };
  const started = hrtimeNow();
  await Promise.all(Array.from({ length: callers }, worker));
  const elapsedMs = hrtimeNow() - started;
  return { opsPerSec: (total / elapsedMs) * 1000, elapsedMs, latencyNs: summarize(Array.from(latencies)) };
}

/** Deterministic PRNG (mulberry32), so every run writes the same data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS =
  'the a cache write flush store thread turn model token reply prompt daemon outbox version key'.split(' ');

/** ASCII prose of exactly `length` characters (no characters JSON must escape). */
export function text(random: () => number, length: number): string {
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const word = WORDS[Math.floor(random() * WORDS.length)] as string;
    parts.push(word);
    size += word.length + 1;
  }
  return parts.join(' ').slice(0, length);
}

/** A ~200-byte JSON object, the typical small cache value of the write and read cases. */
export function smallValue(random: () => number, i: number): Record<string, unknown> {
  return {
    id: i,
    user: `user-${i % 997}`,
    tags: ['alpha', 'beta', 'gamma'].slice(0, 1 + (i % 3)),
    score: Math.round(random() * 1e6) / 1e3,
    note: text(random, 96),
    updatedAt: '2025-11-27T12:00:00.000Z',
  };
}
