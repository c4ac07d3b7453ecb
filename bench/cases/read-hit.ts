import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { LRUCache } from 'lru-cache';
import { createHybridCache } from '../../src/index.js';
import {
  type BenchContext,
  collectGarbage,
  measureAsync,
  measureSync,
  prng,
  silentLogger,
  smallValue,
} from '../lib/harness.js';
import type { CaseReport, Figure } from '../lib/results.js';
import { NullStorage, ParkedStorage } from '../support/storages.js';

const KEYS = 1024; // a power of two: `i & (KEYS - 1)` picks the key without a division

/**
 * Read hit: the value is in memory. Four ways to read it, each over the same 1,024 keys holding the
 * same ~200-byte objects, round-robin.
 */
export async function readHit(ctx: BenchContext): Promise<Omit<CaseReport, 'elapsedMs'>> {
  const timeMs = ctx.quick ? 300 : 2_500;
  const random = prng(1);
  const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}:profile`);
  const values = keys.map((_, i) => smallValue(random, i));
  const figures: Figure[] = [];
  const mask = KEYS - 1;

  // 1. The floor: lru-cache's synchronous get.
  ctx.progress.step('raw lru-cache.get');
  const lru = new LRUCache<string, object>({ max: 10_000 });
  for (const [k, key] of keys.entries()) lru.set(key, values[k] as object);
  let i = 0;
  collectGarbage();
  figures.push({
    id: 'read-hit.lru-get',
    case: 'read-hit',
    label: 'lru-cache get (sync floor)',
    latencyNs: await measureSync(() => lru.get(keys[i++ & mask] as string), {
      timeMs,
      batch: 1_000,
      minSamples: 2_000,
    }),
  });

  // 2. The floor for any promise API: an async function wrapping it, awaited.
  ctx.progress.step('awaited async wrapper');
  const asyncGet = async (key: string) => lru.get(key);
  collectGarbage();
  figures.push({
    id: 'read-hit.async-floor',
    case: 'read-hit',
    label: 'async wrapper over lru-cache get, awaited (promise floor)',
    latencyNs: await measureAsync(() => asyncGet(keys[i++ & mask] as string), {
      timeMs,
      batch: 100,
      minSamples: 2_000,
    }),
    baseline: 'read-hit.lru-get',
  });

  // 3. hybrid-cache get of a clean (flushed) entry whose value has been parsed once.
  ctx.progress.step('hybrid-cache get');
  const cache = await createHybridCache<object>({
    storage: new NullStorage(),
    outbox: { durability: 'none' },
    maxEntries: 10_000,
    logger: silentLogger,
  });
  for (const [k, key] of keys.entries()) await cache.set(key, values[k] as object);
  await cache.flush();
  for (const key of keys) await cache.get(key);
  collectGarbage();
  figures.push({
    id: 'read-hit.hybrid-get',
    case: 'read-hit',
    label: 'hybrid-cache get (clean entry)',
    latencyNs: await measureAsync(() => cache.get(keys[i++ & mask] as string), {
      timeMs,
      batch: 100,
      minSamples: 2_000,
    }),
    baseline: 'read-hit.async-floor',
  });
  const stats = cache.stats();
  await cache.close();
  if (stats.misses !== 0) throw new Error(`read-hit: hybrid-cache missed ${stats.misses} times`);

  // 3b. hybrid-cache get of a dirty (not yet flushed) entry: served from the dirty set.
  ctx.progress.step('hybrid-cache get (dirty entry)');
  const dirtyCache = await createHybridCache<object>({
    storage: new ParkedStorage(),
    outbox: { durability: 'none' },
    maxEntries: 10_000,
    logger: silentLogger,
  });
  for (const [k, key] of keys.entries()) await dirtyCache.set(key, values[k] as object);
  for (const key of keys) await dirtyCache.get(key);
  collectGarbage();
  figures.push({
    id: 'read-hit.hybrid-get-dirty',
    case: 'read-hit',
    label: 'hybrid-cache get (dirty entry, not yet flushed)',
    latencyNs: await measureAsync(() => dirtyCache.get(keys[i++ & mask] as string), {
      timeMs: timeMs / 2,
      batch: 100,
      minSamples: 1_000,
    }),
    baseline: 'read-hit.async-floor',
  });
  await dirtyCache.close({ timeoutMs: 1 });

  // 4. bentocache with a memory L1 only; once as configured by default (values serialized in L1,
  // parsed on every get) and once with `serialize: false` (shared objects, like hybrid-cache).
  for (const serialize of [false, true]) {
    ctx.progress.step(`bentocache get (memory L1, serialize: ${serialize})`);
    const bento = new BentoCache({
      default: 'memory',
      stores: {
        memory: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000, serialize })),
      },
    });
    for (const [k, key] of keys.entries()) await bento.set({ key, value: values[k], ttl: '1h' });
    const probe = await bento.get({ key: keys[0] as string });
    if (probe === undefined) throw new Error('read-hit: bentocache did not return the value');
    collectGarbage();
    figures.push({
      id: serialize ? 'read-hit.bento-get-serialized' : 'read-hit.bento-get',
      case: 'read-hit',
      label: serialize
        ? 'bentocache get, memory L1, default serialize: true'
        : 'bentocache get, memory L1, serialize: false',
      latencyNs: await measureAsync(() => bento.get({ key: keys[i++ & mask] as string }), {
        timeMs,
        batch: 100,
        minSamples: 2_000,
      }),
      baseline: 'read-hit.hybrid-get',
    });
    await bento.disconnectAll();
  }

  return {
    id: 'read-hit',
    title: 'Read hit',
    method:
      'Latency of one read whose value is in memory, over 1,024 keys holding ~200-byte objects, read round-robin. ' +
      'Operations this short are timed in batches (1,000 for the synchronous get, 100 for the awaited ones) so the clock ' +
      'reading (~30-50 ns) does not dominate; each sample is the mean per operation of one batch, so p99/p999 are of batch ' +
      'means and understate single-operation outliers.',
    figures,
    notes: [
      'The promise floor is what any `await`ed API costs on this machine; hybrid-cache get is compared with it.',
      'bentocache stores values serialized in its memory L1 by default (JSON.parse on every get); with `serialize: false` it hands out shared objects, as hybrid-cache does. The target compares against the faster (`serialize: false`) variant.',
    ],
  };
}
