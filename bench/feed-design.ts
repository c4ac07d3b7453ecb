/**
 * `node --import tsx --expose-gc bench/feed-design.ts [--writes=10000] [--rounds=5]`: what a change
 * feed stamped into the values table itself would cost a flush, against the feed table every write
 * inserts into today, each against the physical limit, in one run on one server.
 *
 * Today each applied value also inserts a row into the table's feed (`*_feed`: its own heap row,
 * two index entries and a sequence value). The alternative measured here keeps the writing
 * transaction's id in a column of the values table (`changed_xid xid8`, indexed), so the feed is
 * read from the values table itself and a write stores nothing more than its row. It is built in a
 * copy of `conversation_threads` with the same indexes and triggers, next to the real one:
 *
 * - `limit`: 200-row `INSERT … ON CONFLICT` from text arrays into `conversation_threads`
 *   (the physical limit, as `npm run bench -- --only=postgres` defines it);
 * - `limit + feed row`: the limit, plus the feed row each write stores today;
 * - `write function (jsonb)`: today's write function, with PostgresStorage's arguments;
 * - `stamped limit`: the limit into the copy, which stamps `changed_xid`;
 * - `stamped function (arrays)`: today's apply logic (newest write per key, log floors, write
 *   times, per-write outcomes) over the copy, its arguments as arrays instead of one jsonb.
 *
 * - `PostgresStorage.apply` and a cache flushing through it, as they are today, for reference;
 * - and the parts of today's write function, to tell where its time goes: the limit returning a
 *   row per write, the apply function it calls (values only) called directly, and that function
 *   without its feed row.
 *
 * Variants are interleaved, the order rotating each round; 4 batches in flight, as the flusher
 * keeps them. Results go to stdout and bench/results/feed-design.md (feed-design-pinned.md).
 *
 * With `--pin` the server runs on the last CPU and this process on the others (taskset), so the
 * client's CPU is not taken from the server, as with a database on its own machine: on shared
 * cores every microsecond the client spends per write is one the server cannot.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../src/storage/postgres/migrate.js';
import { PostgresStorage } from '../src/storage/postgres/postgres-storage.js';
import { type WriteCall, writeCalls } from '../src/storage/sql-functions/table-functions.js';
import { put } from '../src/testing/writes.js';
import { connectionUrl, createDatabase } from '../test/support/plain-postgres.js';
import { PostgresCluster } from '../test/support/postgres.js';
import { benchCache } from './lib/case.js';
import { median } from './lib/measure.js';
import { physicalLimitSql } from './lib/physical-limit.js';

const { values: args } = parseArgs({
  options: {
    writes: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '5' },
    pin: { type: 'boolean', default: false },
  },
});
const WRITES = Number(args.writes);
const ROUNDS = Number(args.rounds);
const BATCH = 200;
const IN_FLIGHT = 4;

type Variant =
  | 'limit'
  | 'limit-returning'
  | 'limit-feed'
  | 'apply-fn-no-feed'
  | 'apply-fn'
  | 'write-fn'
  | 'stamped-limit'
  | 'stamped-fn'
  | 'apply'
  | 'apply-no-ring'
  | 'cache';
const VARIANTS: Variant[] = [
  'limit',
  'limit-returning',
  'limit-feed',
  'apply-fn-no-feed',
  'apply-fn',
  'write-fn',
  'stamped-limit',
  'stamped-fn',
  'apply',
  'apply-no-ring',
  'cache',
];
const LABELS: Record<Variant, string> = {
  'limit-returning': 'limit, returning a row per write',
  'apply-fn-no-feed': 'today’s apply function without its feed row',
  'apply-fn': 'today’s apply function, called directly',
  cache: 'hybrid-cache flushing to PostgresStorage (defaults: feed, doorbell)',
  apply: '`PostgresStorage.apply`, doorbell on',
  'apply-no-ring': '`PostgresStorage.apply`, `doorbell: false`',
  limit: 'physical limit: 200-row `INSERT … ON CONFLICT`',
  'limit-feed': 'limit + a feed row per write (today’s feed)',
  'write-fn': 'today’s write function (jsonb arguments, feed row)',
  'stamped-limit': 'limit into the stamped table',
  'stamped-fn': 'apply logic over the stamped table (array arguments)',
};

const limitSql = (table: string, stamp: boolean) =>
  physicalLimitSql(table, stamp ? ', changed_xid = excluded.changed_xid' : '');

/** The copy of the values table that carries its own feed, and today's apply logic over it. */
const STAMPED_SETUP = `
  create table public.stamped_threads (like public.conversation_threads including all);
  alter table public.stamped_threads
    add column changed_xid pg_catalog.xid8 not null default pg_catalog.pg_current_xact_id();
  create index stamped_threads_changed_xid on public.stamped_threads (changed_xid);
  create trigger stamped_threads_tombstone_floor before insert or update on public.stamped_threads
    for each row execute function public.conversation_threads_tombstone_items();
  create trigger stamped_threads_tombstone_items after insert or update on public.stamped_threads
    for each row execute function public.conversation_threads_tombstone_items();

  create function public.stamped_apply(
    p_keys text[], p_data text[], p_expires_at_ms bigint[], p_versions bigint[],
    p_log_floors bigint[], p_written_at_ms bigint[], p_first_versions bigint[])
  returns table (idx integer, outcome text, stored_version bigint)
  language sql volatile set search_path = '' as $fn$
    with input as (
      select (u.ord - 1)::integer as idx, u.k, u.v as version, u.d::jsonb as data,
             coalesce(pg_catalog.to_timestamp(u.e::numeric / 1000), 'infinity'::timestamptz) as expires_at,
             coalesce(u.f, 0) as log_floor,
             coalesce(pg_catalog.to_timestamp(u.w::numeric / 1000), pg_catalog.now()) as written_at,
             u.fv as first_version
      -- Multi-argument unnest: unqualified (pg_catalog is searched first anyway).
      from unnest(p_keys, p_data, p_expires_at_ms, p_versions, p_log_floors,
                             p_written_at_ms, p_first_versions) with ordinality as u(k, d, e, v, f, w, fv, ord)
    ),
    winners as (
      select distinct on (k) idx, k, version, data, expires_at, log_floor, written_at, first_version
      from input order by k, version desc, idx
    ),
    written as (
      insert into public.stamped_threads as t
        (thread_id, conversation_data, expires_at, version, deleted, accessed_at, log_floor)
      select k, data, expires_at, version, data is null, pg_catalog.now(), log_floor
      from winners order by k
      on conflict (thread_id) do update
        set conversation_data = excluded.conversation_data, expires_at = excluded.expires_at,
            version = excluded.version, deleted = excluded.deleted, accessed_at = excluded.accessed_at,
            changed_xid = excluded.changed_xid,
            log_floor = case
              when t.deleted or t.expires_at <= (select x.written_at from winners x where x.k = excluded.thread_id)
                then greatest(t.log_floor, t.version, excluded.log_floor,
                              coalesce((select x.first_version from winners x where x.k = excluded.thread_id),
                                       case when excluded.log_floor > 0 then excluded.log_floor + 1
                                            else excluded.version end) - 1)
              else greatest(t.log_floor, excluded.log_floor) end
        where t.version < excluded.version
      returning t.thread_id as k, t.version
    )
    select i.idx,
           case when w.k is not null and win.idx = i.idx then 'applied' else 'stale' end,
           case when w.k is not null and win.idx = i.idx then null
                else coalesce(w.version, (select c.version from public.stamped_threads c where c.thread_id = i.k))
           end
    from input i join winners win on win.k = i.k left join written w on w.k = i.k
    order by i.idx
  $fn$;`;

const cluster = await PostgresCluster.create();
try {
  const url = connectionUrl(await createDatabase(cluster.info, 'bench_feed_design'));
  await migrate({ connectionString: url, max: 1 });
  if (args.pin) pinApart(cluster.dataDir);
  const pool = new pg.Pool({ connectionString: url, max: IN_FLIGHT });
  pool.on('error', () => {});
  await pool.query(STAMPED_SETUP);
  await pool.query(await applyWithoutFeed(pool));
  const serverVersion = (await pool.query<{ server_version: string }>('show server_version')).rows[0]
    ?.server_version;

  const values = Array.from({ length: 256 }, (_, i) => ({
    id: i,
    role: 'assistant',
    content: 'x'.repeat(960),
  }));
  const valueTexts = values.map((v) => JSON.stringify(v));
  const expiresAtMs = Date.now() + 86_400_000;
  const expiresAt = new Date(expiresAtMs).toISOString();
  let version = Date.now() * 1024;

  // As in the postgres bench case: room beside the batches in flight for the doorbell's ring.
  const storage = new PostgresStorage({
    connectionString: url,
    max: IN_FLIGHT + 2,
    table: 'conversation_threads',
  });
  const quietStorage = new PostgresStorage({
    connectionString: url,
    max: IN_FLIGHT + 2,
    table: 'conversation_threads',
    doorbell: false,
  });
  // Another instance listening on the doorbell's channel, as in a fleet.
  const listener = new PostgresStorage({ connectionString: url, max: 1, table: 'conversation_threads' });
  const unsubscribe = listener.onChange(() => {});

  async function writeBatch(variant: Variant, keys: string[], first: number): Promise<number> {
    const versions = keys.map(() => ++version);
    const texts = keys.map((_, i) => valueTexts[(first + i) & 255] as string);
    switch (variant) {
      case 'limit':
        return (
          (await pool.query(limitSql('conversation_threads', false), [keys, texts, expiresAt, versions]))
            .rowCount ?? 0
        );
      case 'stamped-limit':
        return (
          (await pool.query(limitSql('stamped_threads', true), [keys, texts, expiresAt, versions]))
            .rowCount ?? 0
        );
      case 'limit-returning':
        return (
          await pool.query(`${limitSql('conversation_threads', false)} returning t.thread_id, t.version`, [
            keys,
            texts,
            expiresAt,
            versions,
          ])
        ).rows.length;
      case 'apply-fn':
      case 'apply-fn-no-feed': {
        const writes = keys.map((key, i) =>
          put(key, versions[i] as number, values[(first + i) & 255], expiresAtMs),
        );
        const [{ args: a }] = writeCalls(writes, 'thread_id').calls as [WriteCall]; // values only: one call
        const fn = variant === 'apply-fn' ? 'apply_conversation_threads' : 'apply_without_feed';
        const result = await pool.query(`select * from public.${fn}($1::jsonb)`, [
          JSON.stringify(a.p_writes),
        ]);
        return result.rows.filter((row) => row.outcome === 'applied').length;
      }
      case 'limit-feed': {
        const result = await pool.query<{ n: number }>(
          `with written as (${limitSql('conversation_threads', false)} returning t.thread_id, t.version),
             stamped as (insert into public.conversation_threads_feed (key, version)
                         select thread_id, version from written)
           select count(*)::int as n from written`,
          [keys, texts, expiresAt, versions],
        );
        return result.rows[0]?.n ?? 0;
      }
      case 'write-fn': {
        const writes = keys.map((key, i) =>
          put(key, versions[i] as number, values[(first + i) & 255], expiresAtMs),
        );
        const [{ args: a }] = writeCalls(writes, 'thread_id').calls as [WriteCall]; // values only: one call
        const result = await pool.query(
          'select * from public.write_conversation_threads(p_writes => $1::jsonb, p_appends => $2::jsonb)',
          [JSON.stringify(a.p_writes), JSON.stringify(a.p_appends)],
        );
        return result.rows.filter((row) => row.outcome === 'applied').length;
      }
      case 'apply':
      case 'apply-no-ring': {
        const writes = keys.map((key, i) =>
          put(key, versions[i] as number, values[(first + i) & 255], expiresAtMs),
        );
        return (await (variant === 'apply' ? storage : quietStorage).apply(writes)).filter(
          (result) => result.status === 'applied',
        ).length;
      }
      case 'cache':
        throw new Error('a cache is run whole, not by batch');
      case 'stamped-fn': {
        const none = keys.map(() => null);
        const written = keys.map(() => Date.now());
        const result = await pool.query('select * from public.stamped_apply($1, $2, $3, $4, $5, $6, $7)', [
          keys,
          texts,
          keys.map(() => expiresAtMs),
          versions,
          none,
          written,
          none,
        ]);
        return result.rows.filter((row) => row.outcome === 'applied').length;
      }
    }
  }

  async function run(variant: Variant, round: number): Promise<{ rate: number; cpuUs: number }> {
    globalThis.gc?.();
    const keys = Array.from({ length: WRITES }, (_, i) => `${variant}-${round}:${i}`);
    let next = 0;
    const cpu = process.cpuUsage();
    const started = performance.now();
    if (variant === 'cache') await flushThroughCache(keys);
    else
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          for (let b = next++; b * BATCH < WRITES; b = next++) {
            const batch = keys.slice(b * BATCH, (b + 1) * BATCH);
            const stored = await writeBatch(variant, batch, b * BATCH);
            if (stored !== batch.length) throw new Error(`${variant}: stored ${stored} of ${batch.length}`);
          }
        }),
      );
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    return { rate: WRITES / seconds, cpuUs: (used.user + used.system) / WRITES };
  }

  async function flushThroughCache(keys: string[]): Promise<void> {
    const cache = await benchCache({ storage, maxEntries: keys.length + 16, flush: { batchSize: BATCH } });
    for (let i = 0; i < keys.length; i++) await cache.set(keys[i] as string, values[i & 255] as object);
    await cache.flush();
    const flushed = cache.stats().flushedWrites;
    await cache.close();
    if (flushed !== keys.length) throw new Error(`cache: flushed ${flushed} of ${keys.length}`);
  }

  for (const variant of VARIANTS) await run(variant, -1); // warm-up, not recorded
  const rates = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
  const ratios = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
  const cpuUs = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length] as Variant);
    const got = new Map<Variant, number>();
    for (const variant of order) {
      const { rate, cpuUs: us } = await run(variant, round);
      got.set(variant, rate);
      rates.get(variant)?.push(rate);
      cpuUs.get(variant)?.push(us);
    }
    for (const variant of VARIANTS)
      ratios.get(variant)?.push((got.get(variant) ?? 0) / (got.get('limit') ?? 1));
    process.stderr.write(`round ${round + 1}/${ROUNDS}: ${order.join(', ')}\n`);
  }
  unsubscribe();
  await Promise.all([pool.end(), storage.close(), quietStorage.close(), listener.close()]);

  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  say('# The change feed: a row per write, or a stamp in the values table');
  say('');
  say(
    `${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, PostgreSQL ${serverVersion ?? '?'} (embedded, test settings), same machine, ${args.pin ? `server pinned to CPU ${cpus().length - 1}, this process to the others` : 'cores shared'}`,
  );
  say(
    `\`node --import tsx --expose-gc bench/feed-design.ts --writes=${WRITES} --rounds=${ROUNDS}${args.pin ? ' --pin' : ''}\`: batches of ${BATCH} distinct keys (~1 KB values), ${IN_FLIGHT} in flight, variants interleaved; median of ${ROUNDS} rounds`,
  );
  say('');
  say('| variant | writes/s | vs limit (median of per-round ratios; range) | this process’s CPU per write |');
  say('|---|---:|---|---:|');
  for (const variant of VARIANTS) {
    const r = ratios.get(variant) ?? [];
    say(
      `| ${LABELS[variant]} | ${Math.round(median(rates.get(variant) ?? [])).toLocaleString('en')} | ${median(r).toFixed(2)}× (${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)}) | ${median(cpuUs.get(variant) ?? []).toFixed(1)} µs |`,
    );
  }
  const file = args.pin ? 'feed-design-pinned.md' : 'feed-design.md';
  writeFileSync(join(import.meta.dirname, 'results', file), `${lines.join('\n')}\n`);
} finally {
  await cluster.destroy();
}

/** The server (its postmaster, and so every backend it forks) on the last CPU; this process on the rest. */
function pinApart(dataDir: string): void {
  const last = cpus().length - 1;
  if (last < 1) throw new Error('--pin needs at least 2 CPUs');
  const postmaster = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] as string;
  const children = execFileSync('pgrep', ['-P', postmaster]).toString().trim().split('\n');
  for (const pid of [postmaster, ...children]) execFileSync('taskset', ['-a', '-p', '-c', String(last), pid]);
  execFileSync('taskset', ['-a', '-p', '-c', last === 1 ? '0' : `0-${last - 1}`, String(process.pid)]);
}

/** Today's apply function for conversation_threads, as installed, less the CTE that stores the feed rows. */
async function applyWithoutFeed(pool: pg.Pool): Promise<string> {
  const source = (
    await pool.query<{ prosrc: string }>(
      "select prosrc from pg_catalog.pg_proc where proname = 'apply_conversation_threads'",
    )
  ).rows[0]?.prosrc;
  const body = source?.replace(/,\s*(--[^\n]*\n\s*)*stamped as \([\s\S]*?\n\s*\)\n/, '\n');
  if (!body || body === source || body.includes('_feed'))
    throw new Error('apply function: feed CTE not found');
  return `create function public.apply_without_feed(p_writes jsonb)
    returns table (idx integer, outcome text, stored_version bigint)
    language sql volatile set search_path = '' as $fn$${body}$fn$`;
}
