import { join } from 'node:path';
import { BentoCache, bentostore } from 'bentocache';
import { kyselyDriver } from 'bentocache/drivers/kysely';
import { memoryDriver } from 'bentocache/drivers/memory';
import { Kysely, PostgresDialect } from 'kysely';
import type { Durability } from '../../src/index.js';
import { SqliteOutbox } from '../../src/sync/outbox/sqlite-outbox.js';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { prng, smallValue } from '../lib/data.js';
import { collectGarbage, concurrentLoad, measureAsync } from '../lib/measure.js';
import { planUpsert } from '../support/plan.js';
import { NullStorage } from '../support/storages.js';

const KEY_SPACE = 10_000;
/** Writers yield to the event loop after this many writes, as request handlers would. */
const YIELD_EVERY = 64;

/**
 * Write: `set` awaited one after another per durability; concurrent `set` at 1, 16 and 256 callers,
 * flushing to the store and to a no-op store; against a write-through cache (bentocache, memory L1
 * + PostgreSQL L2) and the original plan's upsert per write.
 */
export async function write(ctx: BenchContext): Promise<Figure[]> {
  const { quick, supabase } = ctx;
  const random = prng(2);
  const values = Array.from({ length: 1024 }, (_, i) => smallValue(random, i));
  const value = (i: number) => values[i & 1023] as object;
  const store = () => supabase?.storage() ?? new NullStorage();
  const storeName = supabase ? 'SupabaseStorage via the test gateway' : 'no-op (PostgreSQL unavailable)';
  const figures: Figure[] = [];

  for (const durability of ['none', 'process', 'fsync'] as Durability[]) {
    ctx.step(`hybrid-cache set, sequential, durability ${durability}`);
    const cache = await benchCache({
      storage: store(),
      outbox: { path: join(ctx.tmpDir, `write-seq-${durability}.db`), durability },
      maxEntries: KEY_SPACE * 2,
    });
    let i = 0;
    const fsync = durability === 'fsync';
    collectGarbage();
    const latency = await measureAsync(() => cache.set(`seq-${durability}:${i % KEY_SPACE}`, value(i++)), {
      timeMs: (quick ? 300 : 3_000) * (fsync ? 4 / 3 : 1),
      minSamples: quick ? (fsync ? 200 : 2_000) : fsync ? 1_500 : 20_000,
      yieldEvery: YIELD_EVERY,
    });
    figures.push({
      id: `write.set-seq-${durability}`,
      label: `hybrid-cache set, awaited sequentially, durability ${durability}`,
      latencyNs: latency,
      opsPerSec: 1e9 / latency.mean,
      baseline: durability === 'none' ? undefined : 'write.set-seq-none',
      details: { writes: i, store: storeName },
    });
    await cache.close({ timeoutMs: quick ? 5_000 : 30_000 });
  }

  // Group commit (durability process) under concurrent callers, flushing in the same process either
  // to the store (HTTP client and gateway compete for the CPU, as in a daemon) or to a no-op store
  // (the cache and its flusher alone).
  for (const callers of [1, 16, 256]) {
    for (const local of [false, true]) {
      ctx.step(`hybrid-cache set, ${callers} concurrent callers, ${local ? 'no-op store' : 'store'}`);
      const cache = await benchCache({
        storage: local ? new NullStorage() : store(),
        outbox: { path: join(ctx.tmpDir, `write-conc-${callers}-${local}.db`), durability: 'process' },
        maxEntries: KEY_SPACE * 2,
      });
      const total = quick ? 20_000 : local ? 150_000 : 60_000;
      const set = (i: number) => cache.set(`conc${callers}${local}:${i % KEY_SPACE}`, value(i));
      collectGarbage();
      await concurrentLoad(callers, Math.min(5_000, total / 4), set, YIELD_EVERY); // warm-up
      const result = await concurrentLoad(callers, total, set, YIELD_EVERY);
      const stats = cache.stats();
      await cache.close({ timeoutMs: quick ? 5_000 : 30_000 });
      figures.push({
        id: `write.set-concurrent-${callers}${local ? '-local' : ''}`,
        label: `hybrid-cache set, ${callers} concurrent caller${callers === 1 ? '' : 's'}, ${local ? 'no-op store (cache + flusher only)' : 'flushing to the store'}`,
        opsPerSec: result.opsPerSec,
        latencyNs: result.latencyNs,
        baseline: local
          ? `write.set-concurrent-${callers}`
          : callers === 1
            ? undefined
            : 'write.set-concurrent-1',
        byRate: true,
        details: {
          writes: total,
          elapsedMs: Math.round(result.elapsedMs),
          flushedWritesAtEnd: stats.flushedWrites,
          pendingAtEnd: stats.pending,
          ...(local ? {} : await bareOutbox(ctx, callers, value)),
        },
      });
    }
  }

  if (!supabase) return figures;
  ctx.step('bentocache set, write-through to PostgreSQL');
  const pool = supabase.pool(16);
  // bentocache 1.6.1's Kysely adapter creates `expires_at` as bigint but writes a Date on
  // PostgreSQL, so every L2 write would fail, silently (L2 errors are suppressed by default).
  await pool.query(
    'create table if not exists bentocache_bench (key varchar(255) primary key, value text, expires_at timestamptz)',
  );
  const connection = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  const bento = new BentoCache({
    default: 'tiered',
    suppressL2Errors: false,
    stores: {
      tiered: bentostore()
        .useL1Layer(memoryDriver({ maxItems: KEY_SPACE * 2 }))
        .useL2Layer(
          kyselyDriver({
            connection,
            tableName: 'bentocache_bench',
            autoCreateTable: false,
            pruneInterval: false,
          }),
        ),
    },
  });
  await bento.set({ key: 'warm', value: value(0), ttl: '1h' });
  const bentoSet = (i: number) => bento.set({ key: `wt:${i % KEY_SPACE}`, value: value(i), ttl: '24h' });
  const writeThrough = await baseline(ctx, 'write.bento-write-through', bentoSet, 3_000, 8_000, [
    'bentocache set, write-through (memory L1 + PostgreSQL L2 via Kysely, direct connection)',
    'bentocache set, write-through, 16 concurrent callers',
  ]);
  const [stored] = await supabase.sql<{ n: number }>('select count(*)::int as n from bentocache_bench');
  if (!stored?.n) throw new Error('write: bentocache wrote nothing to its PostgreSQL L2');
  writeThrough[0]!.details = { rowsInL2: stored.n };
  figures.push(...writeThrough);
  await bento.disconnectAll();

  ctx.step('original plan: supabase-js upsert per write');
  const client = supabase.client();
  const upsert = (i: number) => planUpsert(client, `plan:${i % KEY_SPACE}`, value(i));
  figures.push(
    ...(await baseline(ctx, 'write.plan-upsert', upsert, 2_000, 6_000, [
      'original plan: one supabase-js upsert per write (through the gateway)',
      'original plan: upsert per write, 16 concurrent callers',
    ])),
  );
  return figures;
}

/** A baseline's sequential latency (against `set`, durability process) and its rate at 16 callers. */
async function baseline(
  ctx: BenchContext,
  id: string,
  op: (i: number) => Promise<unknown>,
  minSamples: number,
  concurrentOps: number,
  [label, label16]: [string, string],
): Promise<Figure[]> {
  let i = 0;
  collectGarbage();
  const latency = await measureAsync(() => op(i++), {
    timeMs: ctx.quick ? 400 : 3_000,
    minSamples: ctx.quick ? 300 : minSamples,
  });
  const concurrent = await concurrentLoad(16, ctx.quick ? 1_000 : concurrentOps, op);
  return [
    { id, label, latencyNs: latency, opsPerSec: 1e9 / latency.mean, baseline: 'write.set-seq-process' },
    {
      id: `${id}-16`,
      label: label16,
      opsPerSec: concurrent.opsPerSec,
      latencyNs: concurrent.latencyNs,
      baseline: 'write.set-concurrent-16',
      byRate: true,
    },
  ];
}

/** The same load on a bare outbox, to count appends per SQLite transaction (group commit). */
async function bareOutbox(ctx: BenchContext, callers: number, value: (i: number) => object) {
  const outbox = SqliteOutbox.open({
    path: join(ctx.tmpDir, `outbox-conc-${callers}.db`),
    durability: 'process',
  });
  const appends = ctx.quick ? 5_000 : 20_000;
  const before = outbox.commits;
  const raw = await concurrentLoad(callers, appends, (i) =>
    outbox.append({
      key: `k${i % KEY_SPACE}`,
      version: i + 1,
      json: JSON.stringify(value(i)),
      expiresAt: null,
      queuedAt: Date.now(),
    }),
  );
  const commits = outbox.commits - before;
  outbox.close();
  return {
    outboxAppendsPerCommit: Math.round((appends / commits) * 10) / 10,
    bareOutboxAppendsPerSec: Math.round(raw.opsPerSec),
  };
}
