import { hrtimeNow } from 'tinybench';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { flushValues } from '../lib/data.js';
import { collectGarbage, median } from '../lib/measure.js';
import { physicalLimitSql } from '../lib/physical-limit.js';

/**
 * Flush throughput: N new keys with ~1 KB values drained by the flusher into PostgreSQL through
 * SupabaseStorage and the gateway, per batch size; against the physical limit, the same rows in
 * one multi-row `INSERT … ON CONFLICT` over a direct connection to the same server.
 */
export async function flush(ctx: BenchContext): Promise<Figure[]> {
  const supabase = ctx.supabase;
  if (!supabase) throw new Error('flush needs PostgreSQL');
  const runs = ctx.quick ? 1 : 3;
  const values = flushValues();
  const figures: Figure[] = [];
  let limitKeys: string[] = [];

  for (const batchSize of [1, 50, 200, 1000]) {
    const n = batchSize === 1 ? (ctx.quick ? 400 : 2_000) : ctx.quick ? 4_000 : 20_000;
    const rates: number[] = [];
    for (let run = 0; run < runs; run++) {
      ctx.step(`batch ${batchSize}: ${n} writes, run ${run + 1}/${runs}`);
      const keys = Array.from({ length: n }, (_, i) => `flush-${batchSize}-${run}:${i}`);
      const cache = await benchCache({
        storage: supabase.storage(),
        maxEntries: n + 16,
        flush: { batchSize },
      });
      collectGarbage();
      const started = hrtimeNow();
      for (let i = 0; i < n; i++) await cache.set(keys[i] as string, values[i & 255] as object);
      await cache.flush();
      rates.push((n / (hrtimeNow() - started)) * 1000);
      const flushed = cache.stats().flushedWrites;
      await cache.close();
      if (flushed !== n) throw new Error(`flush: expected ${n} writes flushed, saw ${flushed}`);
      if (batchSize === 200 && run === 0) limitKeys = keys;
    }
    figures.push({
      id: `flush.batch-${batchSize}`,
      label: `hybrid-cache flush, batch size ${batchSize}`,
      opsPerSec: median(rates),
      baseline: 'flush.physical-limit',
      details: {
        writes: n,
        runs,
        minPerSec: Math.round(Math.min(...rates)),
        maxPerSec: Math.round(Math.max(...rates)),
        storeCallsPerRun: Math.ceil(n / batchSize),
      },
    });
  }

  // The batch-200 run's rows, deleted first so both take the insert path; the version-guarded
  // statement the migration's apply function runs. The first run only warms the server's caches.
  const pool = supabase.pool(1);
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
  const limitValues = limitKeys.map((_, i) => JSON.stringify(values[i & 255]));
  const limitRates: number[] = [];
  for (let run = 0; run <= runs; run++) {
    ctx.step(`physical limit: ${limitKeys.length} rows in one INSERT … ON CONFLICT, run ${run + 1}`);
    await pool.query('delete from public.conversation_threads where thread_id = any($1::text[])', [
      limitKeys,
    ]);
    await pool.query('vacuum public.conversation_threads');
    const started = hrtimeNow();
    const result = await pool.query(physicalLimitSql(), [
      limitKeys,
      limitValues,
      expiresAt,
      limitKeys.map((_, i) => Date.now() * 1000 + i),
    ]);
    const elapsedMs = hrtimeNow() - started;
    if (result.rowCount !== limitKeys.length)
      throw new Error('flush: physical limit wrote the wrong row count');
    if (run > 0 || runs === 1) limitRates.push((limitKeys.length / elapsedMs) * 1000);
  }
  figures.push({
    id: 'flush.physical-limit',
    label: `physical limit: one multi-row INSERT … ON CONFLICT of the same ${limitKeys.length} rows, direct pg connection`,
    opsPerSec: median(limitRates),
    details: { rows: limitKeys.length, runs: limitRates.length },
  });
  return figures;
}
