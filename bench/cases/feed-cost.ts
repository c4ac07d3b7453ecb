import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { hrtimeNow } from 'tinybench';
import { CACHE_OPTION_DEFAULTS as DEFAULTS } from '../../src/cache/option-defaults.js';
import { type HybridCache, SqliteStorage, type Storage } from '../../src/index.js';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { flushValues, prng, smallValue, text } from '../lib/data.js';
import {
  collectGarbage,
  type LatencySummary,
  measureAsync,
  median,
  summarize,
  yieldToEventLoop,
} from '../lib/measure.js';
import { countSqliteFeedTableReads, FeedCountingStorage } from '../support/storages.js';

const KEYS = 1024;

/**
 * What following the change feed costs an instance (default settings: poll every 100 ms), each
 * against the same thing with `feed: false`, in this process, the variants interleaved:
 * - a read hit (clean entry, store SqliteStorage) against the awaited-async floor of read-hit;
 * - flush throughput (to SupabaseStorage through the gateway, and to SqliteStorage);
 * - the follower's load on the store: feed reads per second, the SQLite ones that read the log
 *   (the rest answered from `PRAGMA data_version`), changes brought, and how long a read takes,
 *   with the store idle and with another instance writing.
 */
export async function feedCost(ctx: BenchContext): Promise<Figure[]> {
  return [...(await readHits(ctx)), ...(await flushes(ctx)), ...(await load(ctx))];
}

/**
 * Read hit with the feed on and off, and the promise floor, in rotating order, 12 rounds. Rounds
 * are short and many: this machine's speed drifts by tens of percent over seconds, so each round's
 * ratio to the floor measured beside it is steadier than one long run of each.
 */
async function readHits(ctx: BenchContext): Promise<Figure[]> {
  const random = prng(1);
  const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}:profile`);
  const values = keys.map((_, i) => smallValue(random, i));
  let i = 0;
  const nextKey = () => keys[i++ & (KEYS - 1)] as string;
  const options = { timeMs: ctx.quick ? 300 : 400, batch: 100, minSamples: 1_000 };
  const rounds = ctx.quick ? 1 : 12;

  // The floor of read-hit (read-hit.async-floor): an async function over lru-cache's get, awaited.
  const lru = new LRUCache<string, object>({ max: 10_000 });
  for (const [k, key] of keys.entries()) lru.set(key, values[k] as object);
  const asyncGet = async (key: string) => lru.get(key);
  const caches: Record<'on' | 'off', HybridCache<object>> = {
    on: await benchCache({
      storage: new SqliteStorage({ path: join(ctx.tmpDir, 'feed-cost-hit-on.db') }),
      maxEntries: 10_000,
    }),
    off: await benchCache({
      storage: new SqliteStorage({ path: join(ctx.tmpDir, 'feed-cost-hit-off.db') }),
      maxEntries: 10_000,
      feed: false,
    }),
  };
  for (const cache of Object.values(caches)) {
    for (const [k, key] of keys.entries()) await cache.set(key, values[k] as object);
    await cache.flush();
    for (const key of keys) await cache.get(key);
  }
  const variants = {
    floor: () => asyncGet(nextKey()),
    off: () => caches.off.get(nextKey()),
    on: () => caches.on.get(nextKey()),
  };
  const names = Object.keys(variants) as Array<keyof typeof variants>;
  const runs: Record<keyof typeof variants, LatencySummary[]> = { floor: [], off: [], on: [] };
  for (let round = 0; round < rounds; round++) {
    for (let v = 0; v < names.length; v++) {
      const name = names[(v + round) % names.length] as keyof typeof variants;
      ctx.step(`read hit, ${name}, round ${round + 1}/${rounds}`);
      collectGarbage();
      runs[name].push(await measureAsync(variants[name], options));
    }
  }
  const stats = { on: caches.on.stats(), off: caches.off.stats() };
  for (const cache of Object.values(caches)) await cache.close({ timeoutMs: 1 });
  for (const [name, s] of Object.entries(stats)) {
    if (s.misses !== 0 || s.revalidations !== 0)
      throw new Error(
        `feed-cost: the feed-${name} cache missed ${s.misses} and revalidated ${s.revalidations}`,
      );
  }
  // The round with the median p50 stands for the variant; every round's p50 is in the details.
  const pick = (list: LatencySummary[]) => {
    const sorted = [...list].sort((a, b) => a.p50 - b.p50);
    return sorted[Math.floor((sorted.length - 1) / 2)] as LatencySummary;
  };
  const p50s = (name: keyof typeof variants) => runs[name].map((r) => Math.round(r.p50)).join(' / ');
  const ratioTo = (name: keyof typeof variants, base: keyof typeof variants) =>
    Number(median(runs[name].map((r, k) => r.p50 / (runs[base][k] as LatencySummary).p50)).toFixed(3));
  return [
    {
      id: 'feed-cost.hit-floor',
      label: 'async wrapper over lru-cache get, awaited (promise floor, as read-hit.async-floor)',
      latencyNs: pick(runs.floor),
      details: { rounds, p50sNs: p50s('floor') },
    },
    {
      id: 'feed-cost.hit-feed-off',
      label: 'hybrid-cache get, clean entry, SqliteStorage, feed: false',
      latencyNs: pick(runs.off),
      baseline: 'feed-cost.hit-floor',
      details: { rounds, p50sNs: p50s('off'), ratioToFloorMedian: ratioTo('off', 'floor') },
    },
    {
      id: 'feed-cost.hit-feed-on',
      label: 'hybrid-cache get, clean entry, SqliteStorage, feed on (default)',
      latencyNs: pick(runs.on),
      baseline: 'feed-cost.hit-floor',
      details: {
        rounds,
        p50sNs: p50s('on'),
        ratioToFloorMedian: ratioTo('on', 'floor'),
        medianRatioToFeedOff: ratioTo('on', 'off'),
        feedChanges: stats.on.feedChanges,
        revalidations: stats.on.revalidations,
      },
    },
  ];
}

/** Flush throughput with the feed on and off, alternating, per store. */
async function flushes(ctx: BenchContext): Promise<Figure[]> {
  const values = flushValues();
  const rounds = ctx.quick ? 1 : 6;
  const stores: Array<{ name: string; n: number; storage: (run: string) => Storage }> = [];
  if (ctx.supabase) {
    const supabase = ctx.supabase;
    stores.push({ name: 'supabase', n: ctx.quick ? 1_000 : 4_000, storage: () => supabase.storage() });
  }
  stores.push({
    name: 'sqlite',
    n: ctx.quick ? 5_000 : 12_000,
    storage: (run) => new SqliteStorage({ path: join(ctx.tmpDir, `feed-cost-flush-${run}.db`) }),
  });
  const figures: Figure[] = [];
  for (const store of stores) {
    const rates: Record<'on' | 'off', number[]> = { on: [], off: [] };
    // CPU time of this process per write: far less sensitive than wall time to other processes on
    // a busy machine. For SQLite it is all the work; for Supabase the gateway's and PostgreSQL's is elsewhere.
    const cpuNsPerWrite: Record<'on' | 'off', number[]> = { on: [], off: [] };
    const feedReads: number[] = [];
    const feedReadMs: number[] = [];
    const feedChanges: number[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const feed of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        const run = `${store.name}-${feed}-${round}`;
        ctx.step(`flush to ${store.name}, feed ${feed}: ${store.n} writes, round ${round + 1}/${rounds}`);
        const storage = new FeedCountingStorage(store.storage(run));
        const cache = await benchCache({
          storage,
          maxEntries: store.n + 16,
          ...(feed === 'off' && { feed: false }),
        });
        const keys = Array.from({ length: store.n }, (_, k) => `feed-cost-flush-${run}:${k}`);
        collectGarbage();
        const cpuBefore = process.cpuUsage();
        const started = hrtimeNow();
        for (let k = 0; k < store.n; k++) {
          await cache.set(keys[k] as string, values[k & 255] as object);
          // As request handlers do: the flusher and the follower run between them.
          if ((k & 63) === 63) await yieldToEventLoop();
        }
        await cache.flush();
        rates[feed].push((store.n / (hrtimeNow() - started)) * 1000);
        const cpu = process.cpuUsage(cpuBefore);
        cpuNsPerWrite[feed].push(((cpu.user + cpu.system) * 1000) / store.n);
        if (feed === 'on') {
          feedReads.push(storage.counts.changesCalls);
          feedReadMs.push(storage.durationsNs.reduce((sum, ns) => sum + ns, 0) / 1e6);
          feedChanges.push(storage.counts.changes);
        }
        const flushed = cache.stats().flushedWrites;
        await cache.close();
        await storage.close();
        if (flushed !== store.n)
          throw new Error(`feed-cost: expected ${store.n} writes flushed, saw ${flushed}`);
      }
    }
    const ratios = rates.on.map((r, k) => r / (rates.off[k] as number));
    const detail = (list: number[]) => list.map((r) => Math.round(r)).join(' / ');
    figures.push(
      {
        id: `feed-cost.flush-${store.name}-feed-off`,
        label: `flush throughput to ${store.name === 'supabase' ? 'SupabaseStorage (gateway)' : 'SqliteStorage'}, batch 200, feed: false`,
        opsPerSec: median(rates.off),
        details: {
          writes: store.n,
          rounds,
          perSec: detail(rates.off),
          cpuNsPerWrite: detail(cpuNsPerWrite.off),
        },
      },
      {
        id: `feed-cost.flush-${store.name}-feed-on`,
        label: `flush throughput to ${store.name === 'supabase' ? 'SupabaseStorage (gateway)' : 'SqliteStorage'}, batch 200, feed on (default)`,
        opsPerSec: median(rates.on),
        baseline: `feed-cost.flush-${store.name}-feed-off`,
        details: {
          writes: store.n,
          rounds,
          perSec: detail(rates.on),
          medianRatioToFeedOff: Number(median(ratios).toFixed(3)),
          cpuNsPerWrite: detail(cpuNsPerWrite.on),
          medianCpuRatioToFeedOff: Number(
            median(cpuNsPerWrite.on.map((ns, k) => ns / (cpuNsPerWrite.off[k] as number))).toFixed(3),
          ),
          feedReadsPerRun: feedReads.join(' / '),
          // Wall time of those reads (they overlap the flush), and the changes they brought: its own.
          feedReadMsPerRun: feedReadMs.map((ms) => ms.toFixed(0)).join(' / '),
          feedChangesPerRun: feedChanges.join(' / '),
        },
      },
    );
  }
  return figures;
}

/**
 * The follower's load on the store, for one instance (the observed one, feed on, default
 * settings): idle, then while another instance over the same store writes a key every 5 ms.
 */
async function load(ctx: BenchContext): Promise<Figure[]> {
  countSqliteFeedTableReads();
  const seconds = ctx.quick ? 3 : 10;
  const path = join(ctx.tmpDir, 'feed-cost-load.db');
  const stores: Array<{ name: string; storage: () => Storage }> = [
    { name: 'sqlite', storage: () => new SqliteStorage({ path }) },
  ];
  if (ctx.supabase) {
    const supabase = ctx.supabase;
    stores.push({ name: 'supabase', storage: () => supabase.storage() });
  }
  const figures: Figure[] = [];
  const pad = text(prng(9), 160);
  for (const store of stores) {
    const observedStorage = new FeedCountingStorage(store.storage());
    const writerStorage = store.storage();
    const observed = await benchCache({ storage: observedStorage });
    const writer = await benchCache({ storage: writerStorage });
    const keys = Array.from({ length: 64 }, (_, k) => `feed-cost-load-${store.name}:${k}`);
    for (const key of keys) await writer.set(key, { n: -1, pad });
    await writer.flush();
    for (const key of keys) await observed.get(key);
    await sleep(300);
    for (const phase of ['idle', 'writes'] as const) {
      ctx.step(`follower load on ${store.name}, ${phase}: ${seconds} s`);
      let writes = 0;
      const writing =
        phase === 'writes'
          ? setInterval(() => void writer.set(keys[writes++ & 63] as string, { n: writes, pad }), 5)
          : undefined;
      observedStorage.reset();
      const started = hrtimeNow();
      await sleep(seconds * 1000);
      const elapsedS = (hrtimeNow() - started) / 1000;
      clearInterval(writing);
      const c = { ...observedStorage.counts };
      const durations = summarize(observedStorage.durationsNs);
      const perSec = (n: number) => Number((n / elapsedS).toFixed(1));
      figures.push({
        id: `feed-cost.load-${store.name}-${phase}`,
        label: `follower's feed reads per second, one instance, ${store.name === 'supabase' ? 'SupabaseStorage (gateway)' : 'SqliteStorage'}, ${phase === 'idle' ? 'store idle' : 'another instance writing a key every 5 ms'}`,
        opsPerSec: c.changesCalls / elapsedS,
        latencyNs: durations,
        details: {
          seconds: Number(elapsedS.toFixed(1)),
          feedReads: c.changesCalls,
          ...(store.name === 'sqlite' && {
            logReadsPerSec: perSec(c.tableReads),
            dataVersionFastPathPerSec: perSec(c.changesCalls - c.tableReads),
          }),
          ...(store.name === 'supabase' && { rpcsPerSec: perSec(c.changesCalls) }),
          changesBroughtPerSec: perSec(c.changes),
          pagesWithMore: c.morePages,
          failures: c.failures,
          writerWritesPerSec: perSec(writes),
          pollIntervalMs: DEFAULTS.feed.pollIntervalMs,
        },
      });
    }
    await writer.flush();
    await writer.close();
    await observed.close();
    await writerStorage.close?.();
    await observedStorage.close();
  }
  return figures;
}
