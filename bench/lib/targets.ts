import type { Figure } from './case.js';
import { formatBytes, formatNs, formatRate, formatRatio } from './format.js';

export interface TargetResult {
  target: string;
  measured: string;
  /** `null` when this run did not measure what the target needs. */
  met: boolean | null;
}

/** This run's figures against the project's performance targets (reported, never asserted). */
export function evaluateTargets(figures: Map<string, Figure>): TargetResult[] {
  // A figure this run did not measure is NaN, and so is everything computed from it.
  const p50 = (id: string) => figures.get(id)?.latencyNs?.p50 ?? Number.NaN;
  const rate = (id: string) => figures.get(id)?.opsPerSec ?? Number.NaN;
  const value = (id: string) => figures.get(id)?.value ?? Number.NaN;
  const p99 = (id: string) => figures.get(id)?.latencyNs?.p99 ?? Number.NaN;
  const check = (target: string, measured: string, met: boolean, ...inputs: number[]): TargetResult =>
    inputs.some(Number.isNaN) ? { target, measured: 'not measured', met: null } : { target, measured, met };

  const [hit, floor, bento] = [
    p50('read-hit.hybrid-get'),
    p50('read-hit.async-floor'),
    p50('read-hit.bento-get'),
  ];
  const [set, writeThrough] = [p50('write.set-seq-process'), p50('write.bento-write-through')];
  const callers = [1, 16, 256];
  const concurrent = (suffix: string) => callers.map((n) => rate(`write.set-concurrent-${n}${suffix}`));
  const rates = (suffix: string) =>
    concurrent(suffix)
      .map((r, i) => `${callers[i]}: ${formatRate(r)}`)
      .join(', ');
  const fastest = Math.max(...concurrent('').map((r) => r || 0)) || Number.NaN;
  const [flush, limit] = [rate('flush.batch-200'), rate('flush.physical-limit')];
  const [replay, hybrid, lru] = [
    value('recovery.replay-100k'),
    value('memory.hybrid-parsed'),
    value('memory.lru-raw'),
  ];
  const [sqliteConverge, supabaseConverge] = [p99('convergence.sqlite'), p99('convergence.supabase')];
  const [hitOn, hitOff, hitFloor] = [
    p50('feed-cost.hit-feed-on'),
    p50('feed-cost.hit-feed-off'),
    p50('feed-cost.hit-floor'),
  ];
  const [flushOn, flushOff] = [
    rate('feed-cost.flush-supabase-feed-on'),
    rate('feed-cost.flush-supabase-feed-off'),
  ];
  const [pgFlush, pgLimit, pgBatched] = [
    rate('postgres.flush-cache'),
    rate('postgres.flush-limit-statement'),
    rate('postgres.flush-limit'),
  ];
  const pgDetails = figures.get('postgres.flush-cache')?.details;
  const pgRatio = (name: string) => {
    const ratio = pgDetails?.[name];
    return typeof ratio === 'number' ? formatRatio(ratio) : '?';
  };
  const roundRatio = (id: string) => {
    const ratio = figures.get(id)?.details?.ratioToFloorMedian;
    return typeof ratio === 'number' ? ratio : Number.NaN;
  };
  const [hitOnRatio, hitOffRatio] = [
    roundRatio('feed-cost.hit-feed-on'),
    roundRatio('feed-cost.hit-feed-off'),
  ];
  const [pgConverge, pgDoorbell] = [p99('postgres.convergence'), p99('postgres.convergence-doorbell-only')];
  return [
    check(
      'Read hit within 1.5× of the awaited-async floor (p50)',
      `${formatNs(hit)} vs ${formatNs(floor)}: ${formatRatio(hit / floor)}`,
      hit / floor <= 1.5,
      hit,
      floor,
    ),
    check(
      "Read hit at least 3× faster than bentocache's (p50, memory L1, serialize: false)",
      `bentocache ${formatNs(bento)}: ${formatRatio(bento / hit)} slower`,
      bento / hit >= 3,
      bento,
      hit,
    ),
    check('Sequential set, durability process, p50 under 30 µs', `p50 ${formatNs(set)}`, set < 30_000, set),
    check(
      'Concurrent set at least 100,000/s (the flusher runs in the same process)',
      `flushing to the store ${rates('')}; no-op store ${rates('-local')} (callers: rate)`,
      fastest >= 100_000,
      fastest,
    ),
    check(
      'set at least 50× faster than write-through (p50, bentocache + PostgreSQL L2)',
      `write-through ${formatNs(writeThrough)}: ${formatRatio(writeThrough / set)} slower`,
      writeThrough / set >= 50,
      writeThrough,
      set,
    ),
    check('Flush at batch 200 at least 20,000 writes/s', formatRate(flush), flush >= 20_000, flush),
    check(
      'Flush at batch 200 within 2× of the physical limit',
      `limit ${formatRate(limit)}: flush is ${formatRatio(limit / flush)} below it`,
      limit / flush <= 2,
      limit,
      flush,
    ),
    check('Replay of 100,000 pending writes under 1 s', `${replay.toFixed(0)} ms`, replay < 1_000, replay),
    check(
      'Memory per entry within 2× of raw lru-cache',
      `${formatBytes(hybrid)} vs ${formatBytes(lru)} per entry: ${formatRatio(hybrid / lru)}`,
      hybrid / lru <= 2,
      hybrid,
      lru,
    ),
    check(
      'Convergence over one SQLite file (flush resolved → other process serves it) p99 ≤ 250 ms',
      `p99 ${formatNs(sqliteConverge)}`,
      sqliteConverge <= 250e6,
      sqliteConverge,
    ),
    check(
      'Convergence over Supabase (flush resolved → other process serves it) p99 ≤ 250 ms',
      `p99 ${formatNs(supabaseConverge)}`,
      supabaseConverge <= 250e6,
      supabaseConverge,
    ),
    check(
      'Read hit with the feed on within 1.2× of the awaited-async floor (p50, median of per-round ratios)',
      `${formatRatio(hitOnRatio)} (feed: false ${formatRatio(hitOffRatio)}); median rounds ${formatNs(hitOn)} vs ${formatNs(hitFloor)} (feed: false ${formatNs(hitOff)})`,
      hitOnRatio <= 1.2,
      hitOnRatio,
      hitOn,
      hitFloor,
      hitOff,
    ),
    check(
      'Flush throughput with the feed on within 10% of feed: false (Supabase, batch 200)',
      `${formatRate(flushOn)} vs ${formatRate(flushOff)}: ${formatRatio(flushOn / flushOff)}`,
      flushOn / flushOff >= 0.9,
      flushOn,
      flushOff,
    ),
    check(
      'PostgresStorage flush at batch 200, doorbell on, at least 90% of the physical limit (one INSERT … ON CONFLICT of every row)',
      `${formatRate(pgFlush)} vs ${formatRate(pgLimit)}: ${formatRatio(pgFlush / pgLimit)} (median of per-round ratios ${pgRatio('ratioToLimitMedian')}); against 200-row INSERTs 4 in flight (${formatRate(pgBatched)}): ${pgRatio('ratioToBatchedLimitMedian')}`,
      pgFlush / pgLimit >= 0.9,
      pgFlush,
      pgLimit,
    ),
    check(
      'Convergence over PostgreSQL with the doorbell (flush resolved → other process serves it) p99 ≤ 50 ms',
      `poll 100 ms: p99 ${formatNs(pgConverge)}; doorbell alone: p99 ${formatNs(pgDoorbell)}`,
      pgConverge <= 50e6 && pgDoorbell <= 50e6,
      pgConverge,
      pgDoorbell,
    ),
  ];
}
