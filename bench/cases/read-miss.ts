import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { prng, smallValue } from '../lib/data.js';
import { collectGarbage, measureAsync } from '../lib/measure.js';
import { PLAN_TABLE, planGet } from '../support/plan.js';

/**
 * Read miss: the value is only in PostgreSQL. The adapter alone (one RPC), hybrid-cache reading
 * through it, and the original plan's get (select, then update `accessed_at`: two round trips).
 */
export async function readMiss(ctx: BenchContext): Promise<Figure[]> {
  const supabase = ctx.supabase;
  if (!supabase) throw new Error('read-miss needs PostgreSQL');
  const keyCount = ctx.quick ? 1_000 : 5_000;
  const random = prng(3);
  const keys = Array.from({ length: keyCount }, (_, i) => `miss:${i}`);
  const data = keys.map((_, i) => JSON.stringify(smallValue(random, i)));

  ctx.step(`loading ${keyCount} rows into both tables`);
  const rows = 'from unnest($1::text[], $2::text[]) as u(k, d) on conflict (thread_id) do nothing';
  await supabase.sql(
    `insert into public.conversation_threads (thread_id, conversation_data, expires_at, version, deleted)
     select k, d::jsonb, now() + interval '1 day', 1, false ${rows}`,
    [keys, data],
  );
  await supabase.sql(
    `insert into public.${PLAN_TABLE} (thread_id, conversation_data, expires_at)
     select k, d::jsonb, now() + interval '1 day' ${rows}`,
    [keys, data],
  );
  await supabase.sql(`analyze public.conversation_threads; analyze public.${PLAN_TABLE}`);

  let i = 0;
  const nextKey = () => keys[i++ % keyCount] as string;
  const time = async (read: (key: string) => Promise<unknown>) => {
    collectGarbage();
    return measureAsync(
      async () => {
        if ((await read(nextKey())) === undefined) throw new Error('read-miss: row not found');
      },
      { timeMs: ctx.quick ? 400 : 3_000, minSamples: ctx.quick ? 300 : 2_000 },
    );
  };

  ctx.step('SupabaseStorage.getMany (one RPC)');
  const storage = supabase.storage();
  const storageGet = await time(async (key) => (await storage.getMany([key])).get(key));

  ctx.step('hybrid-cache get (miss, read-through)');
  // A tiny LRU: every read of the rotation is a miss, even when the key list wraps around.
  const cache = await benchCache({ storage: supabase.storage(), maxEntries: 16 });
  const hybridGet = await time((key) => cache.get(key));
  const stats = cache.stats();
  await cache.close();

  ctx.step("original plan's get (select, then update accessed_at)");
  const client = supabase.client();
  const planRead = await time((key) => planGet(client, key));

  return [
    {
      id: 'read-miss.storage-get',
      label: 'SupabaseStorage.getMany of one key (one RPC through the gateway)',
      latencyNs: storageGet,
    },
    {
      id: 'read-miss.hybrid-get',
      label: 'hybrid-cache get, miss read through SupabaseStorage',
      latencyNs: hybridGet,
      baseline: 'read-miss.storage-get',
      details: { rows: keyCount, misses: stats.misses, loads: stats.loads },
    },
    {
      id: 'read-miss.plan-get',
      label: "original plan's get: select, then update accessed_at (two round trips)",
      latencyNs: planRead,
      baseline: 'read-miss.hybrid-get',
    },
  ];
}
