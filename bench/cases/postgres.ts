import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { prng, smallValue } from '../lib/data.js';
import type { LatencySummary } from '../lib/measure.js';
import { collectGarbage, measureAsync, median, summarize } from '../lib/measure.js';
import { connectionString, endPools, pgPool } from '../support/postgres-pools.js';
import type { BenchSupabase } from '../support/supabase.js';
import { measureConvergence } from './convergence.js';
import { flushFigures } from './postgres-flush.js';

const TABLE = 'conversation_threads';

/**
 * PostgresStorage (node-postgres, straight to the server, no gateway), on the same embedded
 * PostgreSQL as the other cases and on the table flush.ts measures, with its doorbell on (the
 * default): (1) flush throughput at batch 200, through a cache and through `apply` alone, against
 * the physical limit as flush.ts measures it (one `INSERT … ON CONFLICT` of every row) and against
 * a stricter one (200-row statements, as many in flight as the flusher keeps, so the server works
 * on both cores as the flush does), variants interleaved round by round (postgres-flush.ts); (2)
 * convergence with the doorbell, reader in another process, at the default poll interval and with
 * the poll effectively off; (3) a read miss through PostgresStorage against one plain `SELECT` of
 * the row on the same pool.
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
    await endPools();
  }
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
