import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StorageUnavailableError } from '../../../src/index.js';
import { memoryCache, settleWithTimers } from '../../helpers/cache.js';
import { GatedWrites } from '../../helpers/gated-writes.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/**
 * A value flushed by an earlier cache with a short TTL, then an item appended to it by a second cache
 * (which never read the value) while it was live. The store is unreachable for writes meanwhile; the
 * value then expires in the store as it stands.
 */
async function itemRefreshingAnExpiredValue() {
  const storage = new GatedWrites();
  const writer = await memoryCache({ storage });
  await writer.cache.set('k', 'v', { ttlMs: 1_000 });
  await writer.cache.append('k', 'stored', { ttlMs: 1_000 });
  await settleWithTimers(writer.cache.close());
  const { cache } = await memoryCache({ storage, writeTimeoutMs: 600_000 });
  await vi.advanceTimersByTimeAsync(0); // the clock has read the store's high-water mark
  storage.hold();
  await cache.append('k', 'local', { ttlMs: 60_000 });
  await vi.advanceTimersByTimeAsync(2_000);
  return { storage, cache };
}

describe('a read of a key the store has as expired, with local items not yet flushed', () => {
  it('get waits for the items, which keep the key alive, then answers from the store once', async () => {
    const { storage, cache } = await itemRefreshingAnExpiredValue();
    const read = cache.get('k');
    await vi.advanceTimersByTimeAsync(5);
    storage.release();
    expect(await settleWithTimers(read)).toBe('v');
    expect(cache.stats()).toMatchObject({ pending: 0, misses: 1, loads: 2 });
    await settleWithTimers(cache.close());
    expect(vi.getTimerCount()).toBe(0);
  });

  it('getWithItems waits for the items, then answers with the value and every item', async () => {
    const { storage, cache } = await itemRefreshingAnExpiredValue();
    const read = cache.getWithItems('k');
    await vi.advanceTimersByTimeAsync(5);
    storage.release();
    expect(await settleWithTimers(read)).toEqual({ value: 'v', items: ['stored', 'local'] });
    expect(cache.stats()).toMatchObject({ pending: 0, misses: 1, loads: 2 });
    await settleWithTimers(cache.close());
    expect(vi.getTimerCount()).toBe(0);
  });

  it('get waits for items appended while the first ones were being flushed, not only for those', async () => {
    const { storage, cache } = await itemRefreshingAnExpiredValue();
    await cache.append('k', 'later', { ttlMs: 60_000 }); // waits: the key's first items are in flight
    const read = cache.get('k');
    let answered = false;
    void read.then(() => {
      answered = true;
    });
    await vi.advanceTimersByTimeAsync(5); // the store answered that the key expired: the read waits
    storage.release(); // the first items go in...
    storage.hold(); // ...and the later one waits
    await vi.advanceTimersByTimeAsync(100);
    expect(answered).toBe(false);
    expect(cache.stats()).toMatchObject({ pending: 1 });
    storage.release();
    expect(await settleWithTimers(read)).toBe('v');
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({
      value: 'v',
      items: ['stored', 'local', 'later'],
    });
    await settleWithTimers(cache.close());
  });

  it('rejects with StorageUnavailableError naming the key when the items cannot be flushed within the read timeout', async () => {
    const { storage, cache } = await itemRefreshingAnExpiredValue();
    const error = await settleWithTimers(cache.get('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect((error as Error).message).toBe('items appended to k could not be flushed to the store in time');
    await expect(settleWithTimers(cache.getWithItems('k'))).rejects.toBeInstanceOf(StorageUnavailableError);
    storage.release();
    await settleWithTimers(cache.flush());
    // The timed-out reads left nothing waiting: the key reads normally once its items are in.
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({
      value: 'v',
      items: ['stored', 'local'],
    });
    await settleWithTimers(cache.close());
  });
});

describe('a read of a key the store has live, with local items not yet flushed', () => {
  it('answers at once without waiting for the items', async () => {
    const storage = new GatedWrites();
    const writer = await memoryCache({ storage });
    await writer.cache.set('k', 'v');
    await writer.cache.append('k', 'stored');
    await settleWithTimers(writer.cache.close());
    const { cache } = await memoryCache({ storage, writeTimeoutMs: 600_000 });
    await vi.advanceTimersByTimeAsync(0); // the clock has read the store's high-water mark
    storage.hold();
    await cache.append('k', 'local');
    await cache.append('other', 'local');
    expect(await settleWithTimers(cache.get('k'))).toBe('v');
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({
      value: 'v',
      items: ['stored', 'local'],
    });
    expect(cache.stats()).toMatchObject({ pending: 2 });
    storage.release();
    await settleWithTimers(cache.close());
  });
});

describe('a read of a deleted key, with local items not yet flushed', () => {
  it('waits for the items before answering that the key is absent', async () => {
    const storage = new GatedWrites();
    const writer = await memoryCache({ storage });
    await writer.cache.set('k', 'v');
    await writer.cache.delete('k');
    await settleWithTimers(writer.cache.close());
    const { cache } = await memoryCache({ storage, writeTimeoutMs: 600_000 });
    storage.hold();
    await cache.append('k', 'late');
    const error = await settleWithTimers(cache.get('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    storage.release();
    expect(await settleWithTimers(cache.get('k'))).toBeUndefined();
    await settleWithTimers(cache.close());
  });
});
