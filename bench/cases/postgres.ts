import pg from 'pg';
import { hrtimeNow } from 'tinybench';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { type WriteCall, writeCalls } from '../../src/storage/sql-functions/table-functions.js';
import { put } from '../../src/testing/writes.js';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { prng, smallValue, text } from '../lib/data.js';
import type { LatencySummary } from '../lib/measure.js';
import { collectGarbage, measureAsync, median, summarize } from '../lib/measure.js';
import { physicalLimitSql } from '../lib/physical-limit.js';
import type { BenchSupabase } from '../support/supabase.js';
import { measureConvergence } from './convergence.js';

const TABLE = 'conversation_threads';
const BATCH = 200;
/** The flusher's default concurrency: batches in flight at once. */
const IN_FLIGHT = 4;

/**
 * PostgresStorage (node-postgres, straight to the server, no gateway), on the same embedded
 * PostgreSQL as the other cases and on the table flush.ts measures, with its doorbell on (the
 * default): (1) flush throughput at batch 200, through a cache and through `apply` alone, against
 * the physical limit (200-row `INSERT … ON CONFLICT` statements, as many in flight as the flusher
 * keeps), variants interleaved round by round; (2) convergence with the doorbell, reader in
 * another process, at the default poll interval and with the poll effectively off; (3) a read miss
 * through PostgresStorage against one plain `SELECT` of the row on the same pool.
 */
export async function postgres(ctx: BenchContext): Promise<Figure[]> {
  const supabase = ctx.supabase;
  if (!supabase) throw new Error('postgres needs PostgreSQL');
  try {
    return [
      ...(await flushFigures(ctx, supabase)),
      ...(await convergenceFigures(ctx, supabase)),
      ...(await readMissFigures(ctx, supabase)),
    ];
  } finally {
    await Promise.all(pools.splice(0).map((pool) => pool.end().catch(() => {})));
  }
}

/**
 * The database as a connection string. PostgresStorage's doorbell opens its own connection with
 * the pool's options, and node-postgres keeps a pool's `password` option non-enumerable, so it is
 * lost when those options are copied: given a pool made from separate fields (`supabase.pool()`),
 * the doorbell fails to authenticate and keeps reconnecting. A password inside the connection
 * string survives the copy.
 */
function connectionString(supabase: BenchSupabase): string {
  const { user, password, host, port, database } = supabase.admin;
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}`;
}

const pools: pg.Pool[] = [];
function pgPool(supabase: BenchSupabase, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: connectionString(supabase), max });
  pool.on('error', () => {});
  pools.push(pool);
  return pool;
}

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
  | 'limit-1';

const LIMIT_SQL = physicalLimitSql();

async function flushFigures(ctx: BenchContext, supabase: BenchSupabase): Promise<Figure[]> {
  const n = ctx.quick ? 2_000 : 10_000;
  const rounds = ctx.quick ? 2 : 5;
  const random = prng(4);
  const values = Array.from({ length: 256 }, (_, i) => ({
    id: i,
    role: 'assistant',
    content: text(random, 960),
  }));
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
      const cache = await benchCache({
        storage,
        maxEntries: n + 16,
        flush: { batchSize: BATCH },
        ...(variant === 'cache-feed-off' ? { feed: false as const } : {}),
      });
      const started = hrtimeNow();
      for (let i = 0; i < n; i++) await cache.set(keys[i] as string, values[i & 255] as object);
      // The loop never yields (durability none): the flusher starts at flush(), after every set.
      if (variant === 'cache') setLoopMs.push(hrtimeNow() - started);
      await cache.flush();
      const elapsedMs = hrtimeNow() - started;
      const flushed = cache.stats().flushedWrites;
      await cache.close();
      if (flushed !== n) throw new Error(`postgres flush: expected ${n} writes flushed, saw ${flushed}`);
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
  ];
  const rates = new Map<FlushVariant, number[]>(variants.map((v) => [v, []]));
  const ratios: number[] = [];
  const setLoopMs: number[] = [];
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
      baseline: 'postgres.flush-limit',
      details: {
        ...common,
        ...spread('cache'),
        // Per round, cache / limit measured back to back: the ratio least moved by the machine's load.
        ratioToLimitMedian: Number(median(ratios).toFixed(3)),
        ratioToLimitPerRound: ratios.map((r) => r.toFixed(2)).join(' '),
        listenerRings: heard,
        // The set loop's share of the measured time (the rest is flush() draining the backlog).
        setLoopMsMedian: Number(median(setLoopMs.slice(1)).toFixed(1)),
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
      id: 'postgres.flush-limit-1',
      label: `physical limit, one ${BATCH}-row INSERT … ON CONFLICT at a time`,
      opsPerSec: med('limit-1'),
      baseline: 'postgres.flush-limit',
      details: { ...common, ...spread('limit-1'), inFlight: 1 },
    },
  ];
}

async function convergenceFigures(ctx: BenchContext, supabase: BenchSupabase): Promise<Figure[]> {
  const perRun = ctx.quick ? 30 : 125;
  const connection = connectionString(supabase);
  // Poll "off": a poll every 10 minutes, and a vouch long enough that reads never revalidate, so
  // only the doorbell makes the reader read the feed.
  const variants: Array<{
    id: string;
    label: string;
    env: Record<string, string>;
    options: { pollIntervalMs?: number; maxStalenessMs?: number };
  }> = [
    {
      id: 'postgres.convergence',
      label:
        'PostgreSQL, doorbell on, poll 100 ms (defaults): writer flush() resolved → reader process serves it',
      env: {},
      options: {},
    },
    {
      id: 'postgres.convergence-doorbell-only',
      label:
        'PostgreSQL, doorbell on, poll every 10 min (doorbell alone): flush() resolved → reader process serves it',
      env: { FEED_POLL_MS: '600000', FEED_MAX_STALENESS_MS: '3600000' },
      options: { pollIntervalMs: 600_000, maxStalenessMs: 3_600_000 },
    },
  ];
  const pooled = variants.map(() => ({
    latenciesNs: [] as number[],
    via: { event: 0, poll: 0 },
    runs: [] as Figure[],
  }));
  // Two runs of each, alternating (A B B A), each with a fresh reader process.
  for (const index of [0, 1, 1, 0]) {
    const variant = variants[index] as (typeof variants)[number];
    const sink = pooled[index] as (typeof pooled)[number];
    sink.runs.push(
      await measureConvergence(ctx, {
        id: variant.id,
        label: variant.label,
        writerStorage: new PostgresStorage({ pool: pgPool(supabase, 4), table: TABLE }),
        readerEnv: { FEED_POSTGRES: connection, ...variant.env },
        samples: perRun,
        ...variant.options,
        sink,
      }),
    );
  }
  return variants.map((variant, index) => {
    const { latenciesNs, via, runs } = pooled[index] as (typeof pooled)[number];
    const latencyNs = summarize(latenciesNs);
    const ms = (ns: number) => Number((ns / 1e6).toFixed(1));
    const runP = (key: 'p50' | 'p99') =>
      runs.map((r) => ms((r.latencyNs as LatencySummary)[key])).join(' / ');
    const last = runs.at(-1)?.details ?? {};
    return {
      id: variant.id,
      label: variant.label,
      latencyNs,
      details: {
        pollIntervalMs: last.pollIntervalMs ?? null,
        maxStalenessMs: last.maxStalenessMs ?? null,
        readerInChildProcess: true,
        samples: latenciesNs.length,
        runs: runs.length,
        within50ms: latenciesNs.filter((ns) => ns <= 50e6).length,
        maxMs: ms(latencyNs.max),
        runP50Ms: runP('p50'),
        runP99Ms: runP('p99'),
        seenViaChangesEvent: via.event,
        seenViaMsPoll: via.poll,
        flushToEventP50Ms: runs.map((r) => r.details?.flushToEventP50Ms).join(' / '),
        flushToEventP99Ms: runs.map((r) => r.details?.flushToEventP99Ms).join(' / '),
        eventToServedP50Ms: runs.map((r) => r.details?.eventToServedP50Ms).join(' / '),
        eventToServedP99Ms: runs.map((r) => r.details?.eventToServedP99Ms).join(' / '),
        readerDoorbell: runs.map((r) => r.details?.readerDoorbell).join(' / '),
        readerRevalidations: runs.reduce((sum, r) => sum + Number(r.details?.readerRevalidations ?? 0), 0),
      },
    };
  });
}

/**
 * `items-fn` is the function PostgresStorage.getMany calls (the row and its items) called
 * directly on the pool, and `get-fn` the table's plain batched read function (no items): between
 * them and the SELECT, where the miss's time goes.
 */
type MissVariant = 'select' | 'get-fn' | 'items-fn' | 'get-many' | 'cache-get';

async function readMissFigures(ctx: BenchContext, supabase: BenchSupabase): Promise<Figure[]> {
  const keyCount = ctx.quick ? 1_000 : 5_000;
  const rounds = 3;
  const random = prng(3);
  const keys = Array.from({ length: keyCount }, (_, i) => `pg-miss:${i}`);
  const data = keys.map((_, i) => JSON.stringify(smallValue(random, i)));
  ctx.step(`read miss: loading ${keyCount} rows`);
  await supabase.sql(
    `insert into public.conversation_threads (thread_id, conversation_data, expires_at, version, deleted)
     select k, d::jsonb, now() + interval '1 day', 1, false
     from unnest($1::text[], $2::text[]) as u(k, d) on conflict (thread_id) do nothing`,
    [keys, data],
  );
  await supabase.sql('analyze public.conversation_threads');

  const pool = pgPool(supabase, 4);
  const storage = new PostgresStorage({ pool, table: TABLE });
  // A tiny LRU: every read of the rotation is a miss.
  const cache = await benchCache({ storage, maxEntries: 16 });
  const cursors = { select: 0, 'get-fn': 0, 'items-fn': 0, 'get-many': 0, 'cache-get': 0 };
  const nextKey = (variant: MissVariant) => keys[cursors[variant]++ % keyCount] as string;
  const reads: Record<MissVariant, (key: string) => Promise<unknown>> = {
    select: async (key) =>
      (
        await pool.query(
          'select conversation_data, version, expires_at, deleted from public.conversation_threads where thread_id = $1',
          [key],
        )
      ).rows[0],
    'get-fn': async (key) =>
      (await pool.query('SELECT * FROM public.get_conversation_threads(p_thread_ids => $1::text[])', [[key]]))
        .rows[0],
    'items-fn': async (key) =>
      (
        await pool.query(
          'SELECT * FROM public.get_conversation_threads_with_turns(p_thread_ids => $1::text[]) AS result',
          [[key]],
        )
      ).rows[0],
    'get-many': async (key) => (await storage.getMany([key])).get(key),
    'cache-get': (key) => cache.get(key),
  };
  const variants: MissVariant[] = ['select', 'get-many', 'cache-get', 'get-fn', 'items-fn'];
  const results = new Map<MissVariant, LatencySummary[]>(variants.map((v) => [v, []]));
  const ratios: Record<'getMany' | 'cacheGet' | 'getFn' | 'itemsFn', number[]> = {
    getMany: [],
    cacheGet: [],
    getFn: [],
    itemsFn: [],
  };
  try {
    for (let round = 0; round < rounds; round++) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length] as MissVariant);
      ctx.step(`read miss, round ${round + 1}/${rounds}: ${order.join(', ')}`);
      const got = new Map<MissVariant, LatencySummary>();
      for (const variant of order) {
        collectGarbage();
        got.set(
          variant,
          await measureAsync(
            async () => {
              if ((await reads[variant](nextKey(variant))) === undefined)
                throw new Error('read miss: row not found');
            },
            { timeMs: ctx.quick ? 300 : 1_500, minSamples: ctx.quick ? 200 : 1_000 },
          ),
        );
      }
      for (const [variant, summary] of got) results.get(variant)?.push(summary);
      const p50 = (v: MissVariant) => (got.get(v) as LatencySummary).p50;
      ratios.getMany.push(p50('get-many') / p50('select'));
      ratios.cacheGet.push(p50('cache-get') / p50('select'));
      ratios.getFn.push(p50('get-fn') / p50('select'));
      ratios.itemsFn.push(p50('items-fn') / p50('select'));
    }
  } finally {
    await cache.close();
    await storage.close();
  }
  const stats = cache.stats();
  // The round with the median p50 stands for each variant.
  const pick = (v: MissVariant) => {
    const all = [...(results.get(v) ?? [])].sort((a, b) => a.p50 - b.p50);
    return all[all.length >> 1] as LatencySummary;
  };
  const perRound = (values: number[]) => values.map((r) => r.toFixed(2)).join(' ');
  return [
    {
      id: 'postgres.miss-select',
      label: 'plain SELECT of the row by key (pool.query, same pool)',
      latencyNs: pick('select'),
      details: { rows: keyCount, rounds },
    },
    {
      id: 'postgres.miss-get-fn',
      label: 'the batched read function, no items (get_conversation_threads, one key, pool.query)',
      latencyNs: pick('get-fn'),
      baseline: 'postgres.miss-select',
      details: {
        ratioPerRound: perRound(ratios.getFn),
        ratioMedian: Number(median(ratios.getFn).toFixed(3)),
      },
    },
    {
      id: 'postgres.miss-items-fn',
      label: "the read function with items, PostgresStorage.getMany's, called directly (pool.query)",
      latencyNs: pick('items-fn'),
      baseline: 'postgres.miss-select',
      details: {
        ratioPerRound: perRound(ratios.itemsFn),
        ratioMedian: Number(median(ratios.itemsFn).toFixed(3)),
      },
    },
    {
      id: 'postgres.miss-get-many',
      label: 'PostgresStorage.getMany of one key (the get-with-items function, same pool)',
      latencyNs: pick('get-many'),
      baseline: 'postgres.miss-select',
      details: {
        ratioPerRound: perRound(ratios.getMany),
        ratioMedian: Number(median(ratios.getMany).toFixed(3)),
      },
    },
    {
      id: 'postgres.miss-cache-get',
      label: 'hybrid-cache get, miss read through PostgresStorage (feed and doorbell on)',
      latencyNs: pick('cache-get'),
      baseline: 'postgres.miss-select',
      details: {
        ratioPerRound: perRound(ratios.cacheGet),
        ratioMedian: Number(median(ratios.cacheGet).toFixed(3)),
        misses: stats.misses,
        loads: stats.loads,
      },
    },
  ];
}
