import { createHybridCache } from '../../src/index.js';
import {
  type BenchContext,
  collectGarbage,
  measureAsync,
  prng,
  silentLogger,
  smallValue,
} from '../lib/harness.js';
import type { CaseReport, Figure } from '../lib/results.js';
import { PLAN_FUNCTIONS, PLAN_TABLE } from '../support/plan-schema.js';

/**
 * Read miss: the value is only in the store. hybrid-cache reads through (one batched RPC via
 * SupabaseStorage and the gateway); the original plan selects the row, then updates `accessed_at`
 * (two round trips).
 */
export async function readMiss(ctx: BenchContext): Promise<Omit<CaseReport, 'elapsedMs'>> {
  const pg = ctx.pg;
  if (!pg) throw new Error('read-miss needs PostgreSQL');
  const quick = ctx.quick;
  const keyCount = quick ? 1_000 : 5_000;
  const random = prng(3);
  const figures: Figure[] = [];

  ctx.progress.step(`loading ${keyCount} rows into both tables`);
  const rows = Array.from({ length: keyCount }, (_, i) => ({
    key: `miss:${i}`,
    json: JSON.stringify(smallValue(random, i)),
  }));
  const pool = pg.pool(2);
  const keys = rows.map((r) => r.key);
  const data = rows.map((r) => r.json);
  await pool.query(
    `insert into public.conversation_threads (thread_id, conversation_data, expires_at, version, deleted)
     select k, d::jsonb, now() + interval '1 day', 1, false from unnest($1::text[], $2::text[]) as u(k, d)
     on conflict (thread_id) do nothing`,
    [keys, data],
  );
  await pool.query(
    `insert into public.${PLAN_TABLE} (thread_id, conversation_data, expires_at)
     select k, d::jsonb, now() + interval '1 day' from unnest($1::text[], $2::text[]) as u(k, d)
     on conflict (thread_id) do nothing`,
    [keys, data],
  );
  await pool.query(`analyze public.conversation_threads; analyze public.${PLAN_TABLE}`);
  const timeMs = quick ? 400 : 3_000;
  const minSamples = quick ? 300 : 2_000;

  // 1. The adapter alone: one get_conversation_threads RPC for one key.
  ctx.progress.step('SupabaseStorage.getMany (one RPC)');
  const storage = pg.storage();
  let i = 0;
  collectGarbage();
  figures.push({
    id: 'read-miss.storage-get',
    case: 'read-miss',
    label: 'SupabaseStorage.getMany of one key (one RPC through the gateway)',
    latencyNs: await measureAsync(
      async () => {
        const found = await storage.getMany([keys[i++ % keyCount] as string]);
        if (found.size !== 1) throw new Error('read-miss: row not found');
      },
      { timeMs, minSamples },
    ),
  });

  // 2. hybrid-cache get on a miss: read-through via the loader (single-flight, timeout, breaker).
  ctx.progress.step('hybrid-cache get (miss, read-through)');
  const cache = await createHybridCache<object>({
    storage: pg.storage(),
    outbox: { durability: 'none' },
    // A tiny LRU: every read of the rotation is a miss, even when the key list wraps around.
    maxEntries: 16,
    logger: silentLogger,
  });
  collectGarbage();
  figures.push({
    id: 'read-miss.hybrid-get',
    case: 'read-miss',
    label: 'hybrid-cache get, miss read through SupabaseStorage',
    latencyNs: await measureAsync(
      async () => {
        const value = await cache.get(keys[i++ % keyCount] as string);
        if (value === undefined) throw new Error('read-miss: hybrid-cache returned undefined');
      },
      { timeMs, minSamples },
    ),
    baseline: 'read-miss.storage-get',
  });
  const stats = cache.stats();
  await cache.close();

  // 3. The original plan: select('*').eq(thread_id), check expiry, then update accessed_at.
  ctx.progress.step("original plan's get (select, then update accessed_at)");
  const client = pg.client();
  collectGarbage();
  figures.push({
    id: 'read-miss.plan-get',
    case: 'read-miss',
    label: "original plan's get: select, then update accessed_at (two round trips)",
    latencyNs: await measureAsync(
      async () => {
        const key = keys[i++ % keyCount] as string;
        const selected = await client.rpc(PLAN_FUNCTIONS.select, { p_thread_id: key });
        const record = (
          selected.data as Array<{ expires_at: string; conversation_data: unknown }> | null
        )?.[0];
        if (selected.error || !record) throw new Error(`plan select failed: ${selected.error?.message}`);
        if (new Date(record.expires_at).getTime() < Date.now()) throw new Error('plan row expired');
        const touched = await client.rpc(PLAN_FUNCTIONS.touch, {
          p_thread_id: key,
          p_accessed_at: new Date().toISOString(),
        });
        if (touched.error) throw new Error(`plan update failed: ${touched.error.message}`);
        return JSON.stringify(record.conversation_data);
      },
      { timeMs, minSamples },
    ),
    baseline: 'read-miss.hybrid-get',
  });

  return {
    id: 'read-miss',
    title: 'Read miss',
    method:
      `Latency of a read whose value is only in PostgreSQL (${keyCount} rows of ~200-byte JSON, read round-robin, every read a miss). ` +
      'All three go through supabase-js and the PostgREST-compatible test gateway (a separate process) to the same embedded PostgreSQL.',
    figures,
    notes: [
      `hybrid-cache served ${stats.misses} misses with ${stats.loads} store loads.`,
      "The original plan's table-API calls (`.select('*').eq()` and `.update().eq()`) are modelled as one RPC each running the same SQL statement, since the test gateway implements only PostgREST's RPC surface; the round trips and transactions are the plan's.",
      'A miss in a daemon is rare (threads are read from memory after the first access); this case bounds the cost of the first read after a restart.',
    ],
  };
}
