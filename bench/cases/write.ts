import { join } from 'node:path';
import { BentoCache, bentostore } from 'bentocache';
import { kyselyDriver } from 'bentocache/drivers/kysely';
import { memoryDriver } from 'bentocache/drivers/memory';
import { Kysely, PostgresDialect } from 'kysely';
import { createHybridCache, type Durability, type Storage } from '../../src/index.js';
import { SqliteOutbox } from '../../src/sync/sqlite-outbox.js';
import {
  type BenchContext,
  collectGarbage,
  concurrentLoad,
  measureAsync,
  prng,
  silentLogger,
  smallValue,
} from '../lib/harness.js';
import type { CaseReport, Figure } from '../lib/results.js';
import { PLAN_FUNCTIONS } from '../support/plan-schema.js';
import { NullStorage } from '../support/storages.js';

const KEY_SPACE = 10_000;
const CONCURRENCY = [1, 16, 256] as const;
/** Writers yield to the event loop after this many writes, as request handlers would (see harness). */
const YIELD_EVERY = 64;

/**
 * Write: hybrid-cache `set` awaited one after another for each durability mode; concurrent `set`
 * throughput (group commit) at 1, 16 and 256 callers; against a write-through cache (bentocache,
 * memory L1 + PostgreSQL L2) and the original plan's one supabase-js upsert per write.
 */
export async function write(ctx: BenchContext): Promise<Omit<CaseReport, 'elapsedMs'>> {
  const quick = ctx.quick;
  const random = prng(2);
  const values = Array.from({ length: 1024 }, (_, i) => smallValue(random, i));
  const value = (i: number) => values[i & 1023] as object;
  const figures: Figure[] = [];
  const notes: string[] = [];
  const storageFor = (): { storage: Storage; name: string } =>
    ctx.pg
      ? { storage: ctx.pg.storage(), name: 'SupabaseStorage via the test gateway' }
      : { storage: new NullStorage(), name: 'a no-op in-process store (PostgreSQL unavailable)' };
  notes.push(
    `hybrid-cache flushes in the background to ${storageFor().name} while \`set\` is being timed (the flush work shares the event loop, as in a daemon).`,
  );

  // 1. Sequential awaited set per durability mode.
  let run = 0;
  for (const durability of ['none', 'process', 'fsync'] as Durability[]) {
    ctx.progress.step(`hybrid-cache set, sequential, durability ${durability}`);
    const { storage } = storageFor();
    const cache = await createHybridCache<object>({
      storage,
      outbox: { path: join(ctx.tmpDir, `write-seq-${durability}.db`), durability },
      maxEntries: KEY_SPACE * 2,
      logger: silentLogger,
    });
    let i = 0;
    const prefix = `seq${run++}:`;
    collectGarbage();
    const fsync = durability === 'fsync';
    const latency = await measureAsync(() => cache.set(`${prefix}${i % KEY_SPACE}`, value(i++)), {
      timeMs: quick ? (fsync ? 400 : 300) : fsync ? 4_000 : 3_000,
      minSamples: quick ? (fsync ? 200 : 2_000) : fsync ? 1_500 : 20_000,
      yieldEvery: YIELD_EVERY,
    });
    figures.push({
      id: `write.set-seq-${durability}`,
      case: 'write',
      label: `hybrid-cache set, awaited sequentially, durability ${durability}`,
      latencyNs: latency,
      opsPerSec: 1e9 / latency.mean,
      baseline: durability === 'none' ? undefined : 'write.set-seq-none',
      details: { writes: i },
    });
    await cache.close({ timeoutMs: quick ? 5_000 : 30_000 });
  }

  // 2. Concurrent set throughput with group commit (durability process), in two settings:
  //    store: flushing to SupabaseStorage through the gateway, in the same process, as in a daemon;
  //    local: a no-op in-process store: the cache and its flusher without the HTTP client and the
  //      gateway competing for the CPU.
  //    Each caller also yields to the event loop every 64 writes (timed), as request handlers do.
  const regimes = {
    sustained: { suffix: '', label: 'flushing to the store', yieldEvery: YIELD_EVERY },
    local: { suffix: '-local', label: 'no-op store (cache + flusher only)', yieldEvery: YIELD_EVERY },
  } as const;
  for (const callers of CONCURRENCY) {
    for (const [regime, r] of Object.entries(regimes)) {
      ctx.progress.step(`hybrid-cache set, ${callers} concurrent callers, ${regime}`);
      const storage = regime === 'local' ? new NullStorage() : storageFor().storage;
      const cache = await createHybridCache<object>({
        storage,
        outbox: { path: join(ctx.tmpDir, `write-conc-${callers}-${regime}.db`), durability: 'process' },
        maxEntries: KEY_SPACE * 2,
        logger: silentLogger,
      });
      const total = quick ? 20_000 : regime === 'sustained' ? 60_000 : 150_000;
      const prefix = `conc${callers}${regime}:`;
      const { yieldEvery } = r;
      collectGarbage();
      // Warm-up on the same cache so the JIT and SQLite pages are hot.
      await concurrentLoad(
        callers,
        Math.min(5_000, total / 4),
        (i) => cache.set(`${prefix}${i % KEY_SPACE}`, value(i)),
        { yieldEvery },
      );
      const result = await concurrentLoad(
        callers,
        total,
        (i) => cache.set(`${prefix}${i % KEY_SPACE}`, value(i)),
        { yieldEvery },
      );
      const stats = cache.stats();
      await cache.close({ timeoutMs: quick ? 5_000 : 30_000 });
      figures.push({
        id: `write.set-concurrent-${callers}${r.suffix}`,
        case: 'write',
        label: `hybrid-cache set, ${callers} concurrent caller${callers === 1 ? '' : 's'}, ${r.label}`,
        opsPerSec: result.opsPerSec,
        latencyNs: result.latencyNs,
        baseline:
          regime !== 'sustained'
            ? `write.set-concurrent-${callers}`
            : callers === 1
              ? undefined
              : 'write.set-concurrent-1',
        compare: 'rate',
        details: {
          writes: total,
          elapsedMs: Math.round(result.elapsedMs),
          flushedWritesAtEnd: stats.flushedWrites,
          pendingAtEnd: stats.pending,
        },
      });
    }

    // The same load on a bare outbox, to count transactions (the cache does not expose them).
    const outbox = SqliteOutbox.open({
      path: join(ctx.tmpDir, `outbox-conc-${callers}.db`),
      durability: 'process',
    });
    const appends = quick ? 5_000 : 20_000;
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
    const sustained = figures.find((f) => f.id === `write.set-concurrent-${callers}`);
    if (sustained?.details) {
      sustained.details.outboxAppendsPerCommit = Math.round((appends / commits) * 10) / 10;
      sustained.details.bareOutboxAppendsPerSec = Math.round(raw.opsPerSec);
    }
  }

  // 3. Write-through: bentocache with a memory L1 and a PostgreSQL L2 (Kysely over pg, direct).
  if (ctx.pg) {
    ctx.progress.step('bentocache set, write-through to PostgreSQL');
    const pool = ctx.pg.pool(16);
    // bentocache 1.6.1's Kysely adapter creates `expires_at` as bigint but writes a Date on
    // PostgreSQL, so every L2 write fails (silently: L2 errors are suppressed by default). The table
    // is created here with the column type its writes need.
    await pool.query(
      'create table if not exists bentocache_bench (key varchar(255) primary key, value text, expires_at timestamptz)',
    );
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
    const bento = new BentoCache({
      default: 'tiered',
      suppressL2Errors: false,
      stores: {
        tiered: bentostore()
          .useL1Layer(memoryDriver({ maxItems: KEY_SPACE * 2 }))
          .useL2Layer(
            kyselyDriver({
              connection: db,
              tableName: 'bentocache_bench',
              autoCreateTable: false,
              pruneInterval: false,
            }),
          ),
      },
    });
    let i = 0;
    await bento.set({ key: 'warm', value: value(0), ttl: '1h' });
    collectGarbage();
    const latency = await measureAsync(
      () => bento.set({ key: `wt:${i % KEY_SPACE}`, value: value(i++), ttl: '24h' }),
      { timeMs: quick ? 400 : 3_000, minSamples: quick ? 300 : 3_000 },
    );
    const concurrent = await concurrentLoad(16, quick ? 1_000 : 8_000, (n) =>
      bento.set({ key: `wt:${n % KEY_SPACE}`, value: value(n), ttl: '24h' }),
    );
    const stored = await pool.query<{ n: number }>('select count(*)::int as n from bentocache_bench');
    if (!stored.rows[0]?.n) throw new Error('write: bentocache wrote nothing to its PostgreSQL L2');
    figures.push({
      id: 'write.bento-write-through',
      case: 'write',
      label: 'bentocache set, write-through (memory L1 + PostgreSQL L2 via Kysely, direct connection)',
      latencyNs: latency,
      opsPerSec: 1e9 / latency.mean,
      baseline: 'write.set-seq-process',
      details: { rowsInL2: stored.rows[0]?.n ?? null },
    });
    figures.push({
      id: 'write.bento-write-through-16',
      case: 'write',
      label: 'bentocache set, write-through, 16 concurrent callers',
      opsPerSec: concurrent.opsPerSec,
      latencyNs: concurrent.latencyNs,
      baseline: 'write.set-concurrent-16',
      compare: 'rate',
    });
    await bento.disconnectAll();

    // 4. The original plan: one supabase-js upsert (one HTTP round trip) per write.
    ctx.progress.step('original plan: supabase-js upsert per write');
    const client = ctx.pg.client();
    const upsert = async (key: string, data: object) => {
      const now = Date.now();
      const { error } = await client.rpc(PLAN_FUNCTIONS.upsert, {
        thread_id: key,
        conversation_data: data,
        accessed_at: new Date(now).toISOString(),
        expires_at: new Date(now + 24 * 3_600_000).toISOString(),
      });
      if (error) throw new Error(`plan upsert failed: ${error.message}`);
    };
    let j = 0;
    collectGarbage();
    const planLatency = await measureAsync(() => upsert(`plan:${j % KEY_SPACE}`, value(j++)), {
      timeMs: quick ? 400 : 3_000,
      minSamples: quick ? 300 : 2_000,
    });
    const planConcurrent = await concurrentLoad(16, quick ? 1_000 : 6_000, (n) =>
      upsert(`plan:${n % KEY_SPACE}`, value(n)),
    );
    figures.push({
      id: 'write.plan-upsert',
      case: 'write',
      label: 'original plan: one supabase-js upsert per write (through the gateway)',
      latencyNs: planLatency,
      opsPerSec: 1e9 / planLatency.mean,
      baseline: 'write.set-seq-process',
    });
    figures.push({
      id: 'write.plan-upsert-16',
      case: 'write',
      label: 'original plan: upsert per write, 16 concurrent callers',
      opsPerSec: planConcurrent.opsPerSec,
      latencyNs: planConcurrent.latencyNs,
      baseline: 'write.set-concurrent-16',
      compare: 'rate',
    });
  } else {
    notes.push(`Write-through and original-plan baselines skipped: ${ctx.pgUnavailable}.`);
  }

  notes.push(
    "Sequential figures: one caller, each `set` awaited before the next, over 10,000 keys with ~200-byte values; the loop yields to the event loop (untimed) every 64 writes so the flusher runs between writes, as it does between a daemon's requests. Concurrent figures: N callers sharing one cache, each awaiting its own `set`; the rate is writes acknowledged per second, the latency is per `set` under that load.",
    'Concurrent rates include flushing the same writes in the same process: with the store, supabase-js and HTTP (and on this machine the gateway and PostgreSQL competing for the same 2 cores); with the no-op store, the cache and its flusher alone. Writes cycle over 10,000 keys, so part of them coalesce before a flush.',
    '`outboxAppendsPerCommit` is measured with the same load on a bare SqliteOutbox (group commit: every append in the same tick shares one transaction).',
    'Ratios on the baselines read "how many times slower than hybrid-cache" for latency and "how many times the hybrid-cache rate" for throughput.',
  );

  return {
    id: 'write',
    title: 'Write',
    method:
      'hybrid-cache `set` resolves once the write is in memory and (per durability) in the SQLite outbox; the store is written later. ' +
      'The write-through baseline resolves once PostgreSQL has the row; the original plan resolves once its upsert returned over HTTP.',
    figures,
    notes,
  };
}
