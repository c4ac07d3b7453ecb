import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { capturingLogger, memoryCache, settleWithTimers, storedValue } from '../../helpers/cache.js';
import { GatedWrites } from '../../helpers/gated-writes.js';

let dir: string;
beforeEach(() => {
  vi.useFakeTimers();
  dir = mkdtempSync(join(tmpdir(), 'hc-stats-'));
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves `flush()` and reports what the store held at the moment it resolved. */
async function storedWhenFlushed(flushing: Promise<void>, read: () => unknown): Promise<unknown> {
  let seen: unknown;
  await settleWithTimers(flushing.then(() => (seen = read())));
  return seen;
}

describe('read counters', () => {
  it('counts each getWithItems as one hit or one miss', async () => {
    const { cache } = await memoryCache();
    await cache.set('k', 'v');
    await cache.append('k', 'i');
    await settleWithTimers(cache.flush());
    // The key's stored log is not in memory yet: the first read asks the store, the second does not.
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: 'v', items: ['i'] });
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 1, loads: 1 });
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: 'v', items: ['i'] });
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, loads: 1 });
    expect(await settleWithTimers(cache.getWithItems('absent'))).toBeUndefined();
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 2, loads: 2 });
    // An absence is not kept: asking again asks the store again.
    expect(await settleWithTimers(cache.getWithItems('absent'))).toBeUndefined();
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 3, loads: 3 });
  });
});

describe('pending', () => {
  it('counts a key with only appended items once, and a key with a value and items once', async () => {
    const { cache, storage } = await memoryCache();
    storage.goDown();
    await cache.append('items-only', 1);
    await cache.append('items-only', 2);
    expect(cache.stats().pending).toBe(1);
    await cache.set('both', 'v');
    await cache.append('both', 3);
    expect(cache.stats().pending).toBe(2);
    await cache.set('value-only', 'v');
    expect(cache.stats().pending).toBe(3);
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(cache.stats().pending).toBe(0);
  });
});

describe('flush', () => {
  it('waits for items appended while earlier items of the key were being written', async () => {
    const storage = new GatedWrites();
    const { cache } = await memoryCache({ storage });
    storage.hold();
    await cache.append('log', 'first');
    await vi.advanceTimersByTimeAsync(20);
    expect(storage.batches).toHaveLength(1);
    await cache.append('log', 'second');
    const flushing = cache.flush();
    storage.release();
    const items = await storedWhenFlushed(flushing, () =>
      storage.inner.peekItems('log').map((item) => JSON.parse(item.json)),
    );
    expect(items).toEqual(['first', 'second']);
  });

  it('waits for items appended after a value of the key that was being written', async () => {
    const storage = new GatedWrites();
    const { cache } = await memoryCache({ storage });
    storage.hold();
    await cache.set('log', 'header');
    await vi.advanceTimersByTimeAsync(20);
    expect(storage.batches).toHaveLength(1);
    await cache.append('log', 'first');
    const flushing = cache.flush();
    storage.release();
    const items = await storedWhenFlushed(flushing, () =>
      storage.inner.peekItems('log').map((item) => JSON.parse(item.json)),
    );
    expect(items).toEqual(['first']);
    expect(storedValue(storage, 'log')).toBe('header');
  });
});

describe('replay', () => {
  it('counts keys with only appended items among the replayed keys, and keeps their age', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    first.storage.goDown();
    await first.cache.append('items', 1);
    await first.cache.append('items', 2);
    await first.cache.set('value', 'v');
    await settleWithTimers(first.cache.close({ timeoutMs: 10 }));
    vi.advanceTimersByTime(5_000);

    const { logger, at } = capturingLogger();
    const second = await memoryCache({
      outbox: { path, durability: 'process' },
      storage: first.storage,
      logger,
    });
    expect(at('info').find((line) => 'replayed' in line)).toMatchObject({ replayed: 2 });
    expect(second.cache.stats().pending).toBe(2);
    expect(second.cache.stats().oldestPendingAgeMs).toBeGreaterThanOrEqual(5_000);
    second.storage.comeUp();
    await settleWithTimers(second.cache.flush());
    expect(second.storage.inner.peekItems('items').map((item) => JSON.parse(item.json))).toEqual([1, 2]);
    await settleWithTimers(second.cache.close());
  });

  it('reports the age of replayed items alone, from when they were first queued', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    first.storage.goDown();
    await first.cache.append('items', 1);
    await settleWithTimers(first.cache.close({ timeoutMs: 10 }));
    vi.advanceTimersByTime(5_000);
    const second = await memoryCache({ outbox: { path, durability: 'process' }, storage: first.storage });
    expect(second.cache.stats()).toMatchObject({ pending: 1 });
    expect(second.cache.stats().oldestPendingAgeMs).toBeGreaterThanOrEqual(5_000);
    await settleWithTimers(second.cache.close({ timeoutMs: 10 }));
  });
});
