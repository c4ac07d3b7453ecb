import { hrtimeNow } from 'tinybench';
import { createHybridCache } from '../../src/index.js';
import { type BenchContext, collectGarbage, prng, silentLogger, text } from '../lib/harness.js';
import type { CaseReport, Figure } from '../lib/results.js';
import { median } from '../lib/stats.js';

const BATCH_SIZES = [1, 50, 200, 1000] as const;

/**
 * Flush throughput: how fast the write-behind flusher drains writes into PostgreSQL through
 * SupabaseStorage and the gateway, per batch size, against the physical limit: one multi-row
 * `INSERT … ON CONFLICT` of the same rows over a direct connection to the same server.
 */
export async function flush(ctx: BenchContext): Promise<Omit<CaseReport, 'elapsedMs'>> {
  const pg = ctx.pg;
  if (!pg) throw new Error('flush needs PostgreSQL');
  const quick = ctx.quick;
  const repeats = quick ? 1 : 3;
  const random = prng(4);
  const figures: Figure[] = [];
  const pool = pg.pool(2);
  // ~1 KB JSON values.
  const values = Array.from({ length: 256 }, (_, i) => ({
    id: i,
    role: 'assistant',
    content: text(random, 960),
  }));
  const writesFor = (batch: number) => (batch === 1 ? (quick ? 400 : 2_000) : quick ? 4_000 : 20_000);
  let run = 0;
  let limitKeys: string[] = [];

  for (const batchSize of BATCH_SIZES) {
    const rates: number[] = [];
    const calls: number[] = [];
    const n = writesFor(batchSize);
    for (let r = 0; r < repeats; r++) {
      ctx.progress.step(`batch ${batchSize}: ${n} writes, run ${r + 1}/${repeats}`);
      const prefix = `flush${run++}:`;
      const keys = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
      const cache = await createHybridCache<object>({
        storage: pg.storage(),
        outbox: { durability: 'none' },
        maxEntries: n + 16,
        flush: { batchSize },
        logger: silentLogger,
      });
      let flushed = 0;
      cache.on('flushed', ({ count }) => {
        flushed += count;
      });
      collectGarbage();
      const started = hrtimeNow();
      for (let i = 0; i < n; i++) await cache.set(keys[i] as string, values[i & 255] as object);
      await cache.flush();
      const elapsedMs = hrtimeNow() - started;
      const stats = cache.stats();
      await cache.close();
      if (flushed !== n || stats.flushedWrites !== n) {
        throw new Error(
          `flush: expected ${n} writes flushed, saw ${flushed} (${stats.flushedWrites} applied)`,
        );
      }
      rates.push((n / elapsedMs) * 1000);
      calls.push(Math.ceil(n / batchSize));
      if (batchSize === 200 && r === 0) limitKeys = keys;
    }
    figures.push({
      id: `flush.batch-${batchSize}`,
      case: 'flush',
      label: `hybrid-cache flush, batch size ${batchSize}`,
      opsPerSec: median(rates),
      baseline: 'flush.physical-limit',
      details: {
        writes: n,
        runs: repeats,
        minPerSec: Math.round(Math.min(...rates)),
        maxPerSec: Math.round(Math.max(...rates)),
        storeCallsPerRun: calls[0] ?? 0,
      },
    });
  }

  // The physical limit: the same rows (batch-200 run: same keys, values, expiry), deleted first so
  // both take the insert path, in one statement over a direct connection.
  const limitRates: number[] = [];
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
  const limitValues = limitKeys.map((_, i) => JSON.stringify(values[i & 255]));
  for (let r = 0; r < repeats + 1; r++) {
    ctx.progress.step(`physical limit: ${limitKeys.length} rows in one INSERT … ON CONFLICT, run ${r + 1}`);
    await pool.query('delete from public.conversation_threads where thread_id = any($1::text[])', [
      limitKeys,
    ]);
    await pool.query('vacuum public.conversation_threads');
    const started = hrtimeNow();
    const result = await pool.query(
      `insert into public.conversation_threads as t
         (thread_id, conversation_data, expires_at, version, deleted, accessed_at)
       select k, d::jsonb, $3::timestamptz, v, false, now()
       from unnest($1::text[], $2::text[], $4::bigint[]) as u(k, d, v)
       on conflict (thread_id) do update
         set conversation_data = excluded.conversation_data, expires_at = excluded.expires_at,
             version = excluded.version, deleted = excluded.deleted, accessed_at = excluded.accessed_at
         where t.version < excluded.version`,
      [limitKeys, limitValues, expiresAt, limitKeys.map((_, i) => Date.now() * 1000 + i)],
    );
    const elapsedMs = hrtimeNow() - started;
    if (result.rowCount !== limitKeys.length)
      throw new Error('flush: physical limit wrote the wrong row count');
    // The first run warms the server's caches; it is not counted.
    if (r > 0 || repeats === 1) limitRates.push((limitKeys.length / elapsedMs) * 1000);
  }
  figures.push({
    id: 'flush.physical-limit',
    case: 'flush',
    label: `physical limit: one multi-row INSERT … ON CONFLICT of the same ${limitKeys.length} rows, direct pg connection`,
    opsPerSec: median(limitRates),
    details: { rows: limitKeys.length, runs: limitRates.length },
  });

  return {
    id: 'flush',
    title: 'Flush throughput',
    method:
      'N new keys with ~1 KB JSON values are written to a cache (durability none, to isolate the flusher) whose store is ' +
      'SupabaseStorage through the test gateway; the rate is N divided by the time from the first `set` until `flush()` ' +
      'resolved (every write applied in PostgreSQL). Flush settings are the defaults (concurrency 4, interval 20 ms) except the batch size. ' +
      `Median of ${repeats} run${repeats === 1 ? '' : 's'}.`,
    figures,
    notes: [
      "The physical limit is what PostgreSQL itself takes to upsert the same rows in one statement from a direct connection (the same version-guarded `INSERT … ON CONFLICT` the migration's apply function runs), with no HTTP, JSON envelope, PostgREST-style transaction setup, or batching.",
      'Ratios read as "fraction of the physical limit" (1.00× would be the limit).',
    ],
  };
}
