import { pino } from 'pino';
import { createHybridCache, type HybridCache, type HybridCacheOptions } from '../../src/index.js';
import type { BenchSupabase } from '../support/supabase.js';
import type { LatencySummary } from './measure.js';

/** What every case is given. */
export interface BenchContext {
  quick: boolean;
  /** Says what is being measured now (progress on stderr, between measurements only). */
  step(label: string): void;
  /** PostgreSQL behind the gateway; undefined with --no-pg or when it failed to start. */
  supabase: BenchSupabase | undefined;
  /** A scratch directory for this run (outbox files), removed at the end. */
  tmpDir: string;
}

/** One measured figure: a latency distribution, a rate or a value (or several). */
export interface Figure {
  /** `<case>.<name>`: baselines, targets and the summary refer to figures by id. */
  id: string;
  label: string;
  latencyNs?: LatencySummary;
  opsPerSec?: number;
  value?: number;
  unit?: 'bytes' | 'ms';
  /** The figure this one is compared with: by p50 latency, else by rate, else by value. */
  baseline?: string;
  /** Compare with the baseline by rate even though there is a latency. */
  byRate?: boolean;
  /** Further measured details (counts, sizes, settings). */
  details?: Record<string, number | string | boolean | null>;
  /** Lines to chart against a step number (e.g. median latency by turn), drawn in `<id>.svg`. */
  series?: { xLabel: string; yLabel: string; lines: Array<{ name: string; values: number[] }> };
}

/** A case as the results record it. */
export interface CaseResult {
  id: string;
  title: string;
  figures: Figure[];
  elapsedMs: number;
  /** Why the case has no figures: skipped, or failed. */
  skipped?: string;
}

/** Caches under test log nothing: their warnings (closing with writes pending) are expected here. */
const silent = pino({ level: 'silent' });

/**
 * Options every cache under test starts from, before its own: `--no-feed` sets `feed: false` here,
 * to compare the engine with a build that had no change feed (a case that sets `feed` keeps it).
 */
export const benchCacheDefaults: Partial<HybridCacheOptions> = {};

/** A cache under test, without an outbox unless given one. */
export function benchCache(options: HybridCacheOptions): Promise<HybridCache<object>> {
  return createHybridCache<object>({
    outbox: { durability: 'none' },
    logger: silent,
    ...benchCacheDefaults,
    ...options,
  });
}
