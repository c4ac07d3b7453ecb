import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DoorbellRing, HybridCache, Storage } from '../../src/index.js';
import { migrate } from '../../src/storage/postgres/migrate.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { put } from '../../src/testing/writes.js';
import { slowPollingCache } from '../support/doorbell-cache.js';
import { connectionUrl, createDatabase } from '../support/plain-postgres.js';
import { PostgresCluster } from '../support/postgres.js';

// A cluster of its own: the feed's xmin is cluster-wide, so a transaction another test file holds
// open in the shared cluster would hold back the changes these caches wait for.
let cluster: PostgresCluster;
let url: string;
beforeAll(async () => {
  cluster = await PostgresCluster.create();
  url = connectionUrl(await createDatabase(cluster.info, 'doorbell_origin'));
  await migrate({ connectionString: url, max: 1 });
});
afterAll(() => cluster?.destroy());

const opened: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

function storage(): PostgresStorage {
  const s = new PostgresStorage({ connectionString: url, logger: pino({ level: 'silent' }) });
  opened.push(s);
  return s;
}

/** The rings a store's doorbell hands its listeners, and a wait for the next one after `n`. */
function bell(store: PostgresStorage) {
  const rings: DoorbellRing[] = [];
  const waiting: Array<[number, () => void]> = [];
  const unsubscribe = store.onChange((ring) => {
    rings.push(ring ?? {});
    for (const [n, resolve] of waiting) if (rings.length > n) resolve();
  });
  opened.push({ close: async () => unsubscribe() });
  return {
    rings,
    after: (n: number) =>
      new Promise<void>((resolve) => (rings.length > n ? resolve() : waiting.push([n, resolve]))),
  };
}

/** The store as a cache sees it, counting the change-feed reads the cache makes through it. */
function counted(store: PostgresStorage): { storage: Storage; reads: () => number } {
  let reads = 0;
  const changes: Storage['changes'] = (after, opts) => {
    reads++;
    return store.changes(after, opts);
  };
  const storage = new Proxy(store, {
    get(target, name) {
      if (name === 'changes') return changes;
      const value = Reflect.get(target, name, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { storage, reads: () => reads };
}

/** A cache only the doorbell makes read the feed sooner (see slowPollingCache). */
async function cache(store: Storage): Promise<HybridCache<number>> {
  const c = await slowPollingCache(store);
  opened.push(c);
  return c;
}

const following = (c: HybridCache<number>) =>
  vi.waitFor(
    () => {
      expect(c.stats().doorbell).toBe('listening');
      expect(c.stats().feedState).toBe('following');
    },
    { timeout: 10_000, interval: 20 },
  );

let version = Date.now() * 1024;

describe('PostgresStorage doorbell: the ring names the writers’ origin', () => {
  it('rings with the origin its writes carried, and without one for writes that had none', async () => {
    const listener = storage();
    const writer = storage();
    const b = bell(listener);
    await b.after(0);
    expect(b.rings[0]).toEqual({}); // the (re)connection's ring
    await writer.apply([put(`k:${randomUUID()}`, ++version, 1)], { origin: 'cache-a' });
    await b.after(1);
    expect(b.rings[1]).toEqual({ origin: 'cache-a' });
    await writer.apply([put(`k:${randomUUID()}`, ++version, 2)]);
    await b.after(2);
    expect(b.rings[2]).toEqual({});
  });

  it('reads the origin from the payload, and ignores another table’s ring that starts alike', async () => {
    const listener = storage();
    const b = bell(listener);
    await b.after(0);
    const raw = await cluster.connect(new URL(url).pathname.slice(1));
    try {
      // One session's notifications arrive in the order they were sent.
      await raw.query(`select pg_notify('hybrid_cache', 'public.hybrid_cache_entries_x cache-b')`);
      await raw.query(`select pg_notify('hybrid_cache', 'public.hybrid_cache_entries cache-b')`);
      await raw.query(`select pg_notify('hybrid_cache', 'public.hybrid_cache_entries')`);
    } finally {
      await raw.end();
    }
    await b.after(2);
    expect(b.rings.slice(1)).toEqual([{ origin: 'cache-b' }, {}]);
  });

  it('a cache reads nothing for a ring of its own writes, while another cache serves them at once', async () => {
    const own = counted(storage());
    const writerStore = own.storage as PostgresStorage;
    const writer = await cache(own.storage);
    const reader = await cache(storage());
    await Promise.all([following(writer), following(reader)]);
    const ringsHeard = () => writerStore.doorbellStats()?.rings ?? 0;
    const k = `own:${randomUUID()}`;
    const first = ringsHeard();
    await writer.set(k, 1);
    await writer.flush({ timeoutMs: 5_000 });
    await vi.waitFor(async () => expect(await reader.get(k)).toBe(1), { timeout: 10_000, interval: 20 });
    // The first write's ring is heard before counting starts, so the count below waits for the second's.
    await vi.waitFor(() => expect(ringsHeard()).toBeGreaterThan(first), { timeout: 10_000, interval: 20 });

    const reads = own.reads();
    const heard = ringsHeard();
    await writer.set(k, 2);
    await writer.flush({ timeoutMs: 5_000 });
    // The reader polls once a minute and vouches for two: only the ring makes it read 2 now.
    await vi.waitFor(async () => expect(await reader.get(k)).toBe(2), { timeout: 10_000, interval: 20 });
    // The writer's own doorbell heard the same ring, and its cache did not read the feed for it.
    await vi.waitFor(() => expect(ringsHeard()).toBeGreaterThan(heard), { timeout: 10_000, interval: 20 });
    expect(own.reads()).toBe(reads);

    // A ring that names no origin still makes it read.
    const raw = await cluster.connect(new URL(url).pathname.slice(1));
    try {
      await raw.query(`select pg_notify('hybrid_cache', 'public.hybrid_cache_entries')`);
    } finally {
      await raw.end();
    }
    await vi.waitFor(() => expect(own.reads()).toBeGreaterThan(reads), { timeout: 10_000, interval: 20 });
  });
});
