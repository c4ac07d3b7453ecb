/**
 * PostgresStorage's flush throughput at batch 200 (part of the postgres case): a cache flushing
 * through it, `apply` alone and the SQL between, each against the physical limit, variants
 * interleaved round by round in one run on one server.
 */
import { hrtimeNow } from 'tinybench';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { type WriteCall, writeCalls } from '../../src/storage/sql-functions/table-functions.js';
import { put } from '../../src/testing/writes.js';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { flushValues } from '../lib/data.js';
import { collectGarbage, median } from '../lib/measure.js';
import { physicalLimitSql } from '../lib/physical-limit.js';
import { observedStorage } from '../support/observed-storage.js';
import { pgPool } from '../support/postgres-pools.js';
import type { BenchSupabase } from '../support/supabase.js';

const TABLE = 'conversation_threads';
const BATCH = 200;
/** The flusher's default concurrency: batches in flight at once. */
const IN_FLIGHT = 4;

/**
 * The measured variants and, to tell where the gap between them goes, the steps between the
 * physical limit and the cache: the limit plus the change-feed row per write the write function
 * stamps (`limit-feed`), the write function called directly with the same arguments PostgresStorage
 * sends (`write-fn`), and `apply` without the doorbell's ring (`apply-no-ring`).
 */
type FlushVariant =
  | 'cache'
  | 'cache-feed-off'
  | 'apply'
  | 'apply-no-ring'
  | 'write-fn'
  | 'limit-feed'
  | 'limit'
  | 'limit-1'
  | 'limit-statement';

const LIMIT_SQL = physicalLimitSql();

export async function flushFigures(ctx: BenchContext, supabase: BenchSupabase): Promise<Figure[]> {
  const n = ctx.quick ? 2_000 : 10_000;
  const rounds = ctx.quick ? 2 : 5;
  const values = flushValues();
  const valueTexts = values.map((v) => JSON.stringify(v));
  const pool = pgPool(supabase, IN_FLIGHT + 2);
  // Another instance listening on the doorbell's channel, as in a fleet: a NOTIFY is only queued
  // and delivered when someone listens.
  const listener = new PostgresStorage({ pool: pgPool(supabase, 1), table: TABLE });
  let heard = 0;
  const unsubscribe = listener.onChange(() => heard++);
  const storage = new PostgresStorage({ pool, table: TABLE });
  const quietStorage = new PostgresStorage({ pool, table: TABLE, doorbell: false });
  let version = Date.now() * 1024;
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString();

  /** This process's CPU time per write (µs) of each run: what a busy machine disturbs far less. */
  const cpu = new Map<FlushVariant, number[]>();
  const run = async (variant: FlushVariant, round: number): Promise<number> => {
    collectGarbage();
    const before = process.cpuUsage();
    const rate = await runOnce(variant, round);
    const used = process.cpuUsage(before);
    if (round >= 0) cpu.set(variant, [...(cpu.get(variant) ?? []), (used.user + used.system) / n]);
    return rate;
  };
  const runOnce = async (variant: FlushVariant, round: number): Promise<number> => {
    const keys = Array.from({ length: n }, (_, i) => `pg-flush-${variant}-${round}:${i}`);
    if (variant === 'cache' || variant === 'cache-feed-off') {
      const observed = observedStorage(storage);
      const cache = await benchCache({
        storage: observed.storage,
        maxEntries: n + 16,
        flush: { batchSize: BATCH },
        ...(variant === 'cache-feed-off' ? { feed: false as const } : {}),
      });
      const started = hrtimeNow();
      for (let i = 0; i < n; i++) await cache.set(keys[i] as string, values[i & 255] as object);
      // The loop never yields (durability none): the flusher starts at flush(), after every set.
      const setLoopEnded = hrtimeNow();
      const flushCalledAt = performance.now(); // the clock observed-storage.ts times batches with
      await cache.flush();
      const elapsedMs = hrtimeNow() - started;
      if (variant === 'cache' && round >= 0) {
        const { firstBatchAt, inFlight, writesPerSec } = observed.window();
        flusher.setLoopMs.push(setLoopEnded - started);
        flusher.firstBatchMs.push(firstBatchAt - flushCalledAt);
        flusher.inFlight.push(inFlight);
        flusher.windowPerSec.push(writesPerSec);
        flusher.feedReads.push(observed.feedReads());
      }
      const flushed = cache.stats().flushedWrites;
      await cache.close();
      if (flushed !== n) throw new Error(`postgres flush: expected ${n} writes flushed, saw ${flushed}`);
      return (n / elapsedMs) * 1000;
    }
    if (variant === 'limit-statement') {
      // As flush.ts measures the limit: every row in one statement, on one connection.
      const limitArgs = [keys, keys.map((_, i) => valueTexts[i & 255]), expiresAt, keys.map(() => ++version)];
      const started = hrtimeNow();
      const result = await pool.query(LIMIT_SQL, limitArgs);
      const elapsedMs = hrtimeNow() - started;
      if (result.rowCount !== n) throw new Error('postgres flush: limit wrote the wrong row count');
      return (n / elapsedMs) * 1000;
    }
    const batches = Array.from({ length: n / BATCH }, (_, b) => keys.slice(b * BATCH, (b + 1) * BATCH));
    const writers = variant === 'limit-1' ? 1 : IN_FLIGHT;
    let next = 0;
    const started = hrtimeNow();
    await Promise.all(
      Array.from({ length: writers }, async () => {
        for (let b = next++; b < batches.length; b = next++) {
          const batch = batches[b] as string[];
          if (variant === 'apply') {
            const results = await storage.apply(
              batch.map((key, i) => put(key, ++version, values[(b * BATCH + i) & 255])),
            );
            if (results.some((r) => r.status !== 'applied'))
              throw new Error('postgres flush: apply refused a write');
          } else if (variant === 'apply-no-ring') {
            const results = await quietStorage.apply(
              batch.map((key, i) => put(key, ++version, values[(b * BATCH + i) & 255])),
            );
            if (results.some((r) => r.status !== 'applied'))
              throw new Error('postgres flush: apply refused a write');
          } else if (variant === 'write-fn') {
            // Values only: one call.
            const [{ args }] = writeCalls(
              batch.map((key, i) => put(key, ++version, values[(b * BATCH + i) & 255])),
              'thread_id',
            ).calls as [WriteCall];
            const result = await pool.query(
              'SELECT * FROM public.write_conversation_threads(p_writes => $1::jsonb, p_appends => $2::jsonb)',
              [JSON.stringify(args.p_writes), JSON.stringify(args.p_appends)],
            );
            if (result.rowCount !== batch.length)
              throw new Error('postgres flush: write function answered short');
          } else {
            const limitArgs = [
              batch,
              batch.map((_, i) => valueTexts[(b * BATCH + i) & 255]),
              expiresAt,
              batch.map(() => ++version),
            ];
            const result = await pool.query(
              variant === 'limit-feed'
                ? `with written as (${LIMIT_SQL} returning t.thread_id, t.version),
                     stamped as (insert into public.conversation_threads_feed (key, version)
                                 select thread_id, version from written)
                   select count(*)::int as n from written`
                : LIMIT_SQL,
              limitArgs,
            );
            const rows = variant === 'limit-feed' ? (result.rows[0] as { n: number }).n : result.rowCount;
            if (rows !== batch.length) throw new Error('postgres flush: limit wrote the wrong row count');
          }
        }
      }),
    );
    return (n / (hrtimeNow() - started)) * 1000;
  };

  const variants: FlushVariant[] = [
    'cache',
    'apply',
    'limit',
    'cache-feed-off',
    'limit-1',
    'write-fn',
    'apply-no-ring',
    'limit-feed',
    'limit-statement',
  ];
  const rates = new Map<FlushVariant, number[]>(variants.map((v) => [v, []]));
  const ratios: number[] = [];
  const statementRatios: number[] = [];
  /** Where the cache's time goes, per round (see observed-storage.ts). */
  const flusher = {
    setLoopMs: [] as number[],
    firstBatchMs: [] as number[],
    inFlight: [] as number[],
    windowPerSec: [] as number[],
    feedReads: [] as number[],
  };
  try {
    // A warm-up round of each (not recorded): the server's caches, the JIT, the pool's connections.
    for (const variant of variants) await run(variant, -1);
    for (let round = 0; round < rounds; round++) {
      // Rotating order, so drift and the machine's other load hit every variant alike.
      const order = variants.map((_, i) => variants[(i + round) % variants.length] as FlushVariant);
      ctx.step(`flush batch ${BATCH}, round ${round + 1}/${rounds}: ${order.join(', ')} (${n} writes each)`);
      const got = new Map<FlushVariant, number>();
      for (const variant of order) got.set(variant, await run(variant, round));
      for (const [variant, rate] of got) rates.get(variant)?.push(rate);
      ratios.push((got.get('cache') as number) / (got.get('limit') as number));
      statementRatios.push((got.get('cache') as number) / (got.get('limit-statement') as number));
    }
  } finally {
    unsubscribe();
    await listener.close();
    await storage.close();
    await quietStorage.close();
  }
  const med = (v: FlushVariant) => median(rates.get(v) ?? []);
  const spread = (v: FlushVariant) => ({
    minPerSec: Math.round(Math.min(...(rates.get(v) ?? []))),
    maxPerSec: Math.round(Math.max(...(rates.get(v) ?? []))),
    clientCpuUsPerWrite: Number(median(cpu.get(v) ?? []).toFixed(1)),
  });
  const common = { writes: n, rounds, batchSize: BATCH };
  return [
    {
      id: 'postgres.flush-cache',
      label: `hybrid-cache flush to PostgresStorage, batch ${BATCH}, doorbell and feed on (defaults)`,
      opsPerSec: med('cache'),
      baseline: 'postgres.flush-limit-statement',
      details: {
        ...common,
        ...spread('cache'),
        // Per round, cache / limit measured in the same round: the ratio least moved by the
        // machine's load. Against the limit as flush.ts defines it (one statement of every row),
        // and against the stricter one (200-row statements, as many in flight as the flusher).
        ratioToLimitMedian: Number(median(statementRatios).toFixed(3)),
        ratioToLimitPerRound: statementRatios.map((r) => r.toFixed(2)).join(' '),
        ratioToBatchedLimitMedian: Number(median(ratios).toFixed(3)),
        ratioToBatchedLimitPerRound: ratios.map((r) => r.toFixed(2)).join(' '),
        listenerRings: heard,
        // The set loop's share of the measured time, the wait from flush() to the first batch, the
        // batches in flight and the rate from the first batch leaving to the last answered (to set
        // against `apply` alone), and the writer's own change-feed reads during the run.
        setLoopMsMedian: Number(median(flusher.setLoopMs).toFixed(1)),
        firstBatchMsMedian: Number(median(flusher.firstBatchMs).toFixed(1)),
        batchesInFlightMedian: Number(median(flusher.inFlight).toFixed(2)),
        batchWindowPerSecMedian: Math.round(median(flusher.windowPerSec)),
        writerFeedReadsPerRun: flusher.feedReads.join(' '),
      },
    },
    {
      id: 'postgres.flush-cache-feed-off',
      label: `hybrid-cache flush to PostgresStorage, batch ${BATCH}, feed: false (the store still rings)`,
      opsPerSec: med('cache-feed-off'),
      baseline: 'postgres.flush-limit',
      details: { ...common, ...spread('cache-feed-off') },
    },
    {
      id: 'postgres.flush-apply',
      label: `PostgresStorage.apply of ${BATCH} distinct keys, ${IN_FLIGHT} in flight, doorbell on`,
      opsPerSec: med('apply'),
      baseline: 'postgres.flush-limit',
      details: { ...common, ...spread('apply'), inFlight: IN_FLIGHT },
    },
    {
      id: 'postgres.flush-apply-no-ring',
      label: `PostgresStorage.apply of ${BATCH} distinct keys, ${IN_FLIGHT} in flight, doorbell: false (no ring)`,
      opsPerSec: med('apply-no-ring'),
      baseline: 'postgres.flush-limit',
      details: { ...common, ...spread('apply-no-ring'), inFlight: IN_FLIGHT },
    },
    {
      id: 'postgres.flush-write-fn',
      label: `the write function called directly (pool.query, PostgresStorage's arguments), ${IN_FLIGHT} in flight`,
      opsPerSec: med('write-fn'),
      baseline: 'postgres.flush-limit',
      details: { ...common, ...spread('write-fn'), inFlight: IN_FLIGHT },
    },
    {
      id: 'postgres.flush-limit-feed',
      label: `physical limit plus a change-feed row per write (one statement), ${IN_FLIGHT} in flight`,
      opsPerSec: med('limit-feed'),
      baseline: 'postgres.flush-limit',
      details: { ...common, ...spread('limit-feed'), inFlight: IN_FLIGHT },
    },
    {
      id: 'postgres.flush-limit',
      label: `physical limit: ${BATCH}-row INSERT … ON CONFLICT statements, ${IN_FLIGHT} in flight, same pool`,
      opsPerSec: med('limit'),
      details: { ...common, ...spread('limit'), inFlight: IN_FLIGHT },
    },
    {
      id: 'postgres.flush-limit-statement',
      label: `physical limit: one INSERT … ON CONFLICT of all ${n} rows, one connection (as flush.ts)`,
      opsPerSec: med('limit-statement'),
      details: { ...common, ...spread('limit-statement'), inFlight: 1 },
    },
    {
      id: 'postgres.flush-limit-1',
      label: `physical limit, one ${BATCH}-row INSERT … ON CONFLICT at a time`,
      opsPerSec: med('limit-1'),
      baseline: 'postgres.flush-limit',
      details: { ...common, ...spread('limit-1'), inFlight: 1 },
    },
  ];
}
