import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHybridCache } from '../../src/index.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { FaultyStorage } from '../../src/testing/index.js';
import { silentLogger } from '../helpers/cache.js';
import { migratedDatabase } from '../support/plain-postgres.js';

let pool: pg.Pool;
let dir: string;
beforeAll(async () => {
  pool = new pg.Pool({ ...(await migratedDatabase()), max: 2 });
  dir = await mkdtemp(join(tmpdir(), 'pg-expiry-batch-'));
});
afterAll(async () => {
  await pool?.end();
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.useRealTimers();
});

const openCache = (storage: FaultyStorage, outbox: string) =>
  createHybridCache<string>({
    storage,
    outbox: { path: join(dir, outbox) },
    flush: { intervalMs: 5, batchSize: 50 },
    retry: { baseMs: 5, maxMs: 20 },
    breaker: { failureThreshold: 1_000, halfOpenAfterMs: 20 },
    logger: silentLogger,
  });

describe('expiry judged across one batch in PostgreSQL', () => {
  it('a value set after its TTL lapsed, but within an append’s refresh, continues the log in the store', async () => {
    // Only Date is fake, and ahead of PostgreSQL's clock, so its reads never hide what the cache's shows live.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 86_400_000);
    const store = new FaultyStorage(
      new PostgresStorage({ pool, table: 'conversation_threads', doorbell: false }),
    );
    const cache = await openCache(store, 'first.db');
    try {
      await cache.set('thread', 'first', { ttlMs: 1_000 });
      await cache.flush({ timeoutMs: 10_000 });
      // Read once, so memory holds the key's log and answers for it while the store is away.
      expect(await cache.getWithItems('thread')).toEqual({ value: 'first', items: [] });
      // The store goes away, so the append and the next value wait and leave in one batch.
      store.goDown();
      vi.setSystemTime(Date.now() + 500);
      await cache.append('thread', 'turn', { ttlMs: 60_000 });
      vi.setSystemTime(Date.now() + 1_000);
      await cache.set('thread', 'second');
      expect(await cache.getWithItems('thread')).toEqual({ value: 'second', items: ['turn'] });
      const batches: number[] = [];
      const apply = store.inner.apply.bind(store.inner);
      store.inner.apply = (writes, opts) => {
        batches.push(writes.length);
        return apply(writes, opts);
      };
      store.comeUp();
      await cache.flush({ timeoutMs: 10_000 });
      expect(batches).toContain(2);
    } finally {
      await cache.close();
    }
    const stored = (await store.inner.getMany(['thread'])).get('thread');
    expect(stored?.json).toBe(JSON.stringify('second'));
    expect(stored?.items?.map((item) => item.json)).toEqual([JSON.stringify('turn')]);
    const reader = await openCache(new FaultyStorage(store.inner), 'second.db');
    try {
      expect(await reader.getWithItems('thread')).toEqual({ value: 'second', items: ['turn'] });
    } finally {
      await reader.close();
    }
  });
});
