import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { LRUCache } from 'lru-cache';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { prng, smallValue } from '../lib/data.js';
import { collectGarbage, measureAsync, measureSync } from '../lib/measure.js';
import { NullStorage, ParkedStorage } from '../support/storages.js';

const KEYS = 1024; // a power of two: `i & (KEYS - 1)` picks the key without a division

/** Read hit: one read of a value in memory, 1,024 keys of ~200-byte objects read round-robin. */
export async function readHit(ctx: BenchContext): Promise<Figure[]> {
  const random = prng(1);
  const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}:profile`);
  const values = keys.map((_, i) => smallValue(random, i));
  let i = 0;
  const nextKey = () => keys[i++ & (KEYS - 1)] as string;
  // Batches of 100 awaited reads (1,000 synchronous ones) per sample: far longer than a clock reading.
  const options = (share = 1) => ({
    timeMs: (ctx.quick ? 300 : 2_500) * share,
    batch: 100,
    minSamples: 2_000 * share,
  });
  const figures: Figure[] = [];

  ctx.step('raw lru-cache get');
  const lru = new LRUCache<string, object>({ max: 10_000 });
  for (const [k, key] of keys.entries()) lru.set(key, values[k] as object);
  collectGarbage();
  const lruGet = await measureSync(() => lru.get(nextKey()), { ...options(), batch: 1_000 });
  figures.push({ id: 'read-hit.lru-get', label: 'lru-cache get (sync floor)', latencyNs: lruGet });

  ctx.step('awaited async wrapper');
  const asyncGet = async (key: string) => lru.get(key);
  collectGarbage();
  figures.push({
    id: 'read-hit.async-floor',
    label: 'async wrapper over lru-cache get, awaited (promise floor)',
    latencyNs: await measureAsync(() => asyncGet(nextKey()), options()),
    baseline: 'read-hit.lru-get',
  });

  // A clean entry (flushed, parsed once) and a dirty one (its store never answers).
  for (const dirty of [false, true]) {
    ctx.step(`hybrid-cache get (${dirty ? 'dirty' : 'clean'} entry)`);
    const cache = await benchCache({
      storage: dirty ? new ParkedStorage() : new NullStorage(),
      maxEntries: 10_000,
    });
    for (const [k, key] of keys.entries()) await cache.set(key, values[k] as object);
    if (!dirty) await cache.flush();
    for (const key of keys) await cache.get(key);
    collectGarbage();
    figures.push({
      id: dirty ? 'read-hit.hybrid-get-dirty' : 'read-hit.hybrid-get',
      label: dirty ? 'hybrid-cache get (dirty entry, not yet flushed)' : 'hybrid-cache get (clean entry)',
      latencyNs: await measureAsync(() => cache.get(nextKey()), options(dirty ? 0.5 : 1)),
      baseline: 'read-hit.async-floor',
    });
    if (cache.stats().misses !== 0)
      throw new Error(`read-hit: hybrid-cache missed ${cache.stats().misses} times`);
    await cache.close({ timeoutMs: 1 });
  }

  // bentocache with a memory L1 only: shared objects like hybrid-cache (`serialize: false`, the one
  // the target compares with), and its default (values serialized in L1, parsed on every get).
  for (const serialize of [false, true]) {
    ctx.step(`bentocache get (memory L1, serialize: ${serialize})`);
    const bento = new BentoCache({
      default: 'memory',
      stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000, serialize })) },
    });
    for (const [k, key] of keys.entries()) await bento.set({ key, value: values[k], ttl: '1h' });
    if ((await bento.get({ key: keys[0] as string })) === undefined)
      throw new Error('read-hit: bentocache lost a value');
    collectGarbage();
    figures.push({
      id: serialize ? 'read-hit.bento-get-serialized' : 'read-hit.bento-get',
      label: `bentocache get, memory L1, ${serialize ? 'default serialize: true' : 'serialize: false'}`,
      latencyNs: await measureAsync(() => bento.get({ key: nextKey() }), options()),
      baseline: 'read-hit.hybrid-get',
    });
    await bento.disconnectAll();
  }
  return figures;
}
