import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ABANDON } from '../../../src/cache/hybrid-cache.js';
import {
  ClosedError,
  MemoryStorage,
  type StorageCallOptions,
  ValidationError,
  type VersionedWrite,
} from '../../../src/index.js';
import { FaultyStorage } from '../../../src/testing/index.js';
import { memoryCache, settleWithTimers, storedValue } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Holds every write until the test lets it go, and records the signal each write was given. */
class HeldWrites extends FaultyStorage<MemoryStorage> {
  readonly signals: Array<AbortSignal | undefined> = [];
  constructor() {
    super(new MemoryStorage());
  }
  override async apply(writes: VersionedWrite[], opts?: StorageCallOptions) {
    this.signals.push(opts?.signal);
    await new Promise<void>((_, reject) =>
      opts?.signal?.addEventListener('abort', () => reject(opts.signal?.reason), { once: true }),
    );
    return super.apply(writes, opts);
  }
}

async function closedCache() {
  const { cache, storage } = await memoryCache();
  await cache.set('k', 'v');
  await settleWithTimers(cache.close());
  return { cache, storage };
}

describe('a closed cache', () => {
  it('rejects reads with items with ClosedError, as it rejects plain reads', async () => {
    const { cache } = await closedCache();
    const error = await cache.getWithItems('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClosedError);
    expect((error as ClosedError).message).toBe('the cache is closed');
    await expect(cache.get('k')).rejects.toBeInstanceOf(ClosedError);
  });

  it('rejects append and delete with ClosedError and queues nothing', async () => {
    const { cache, storage } = await closedCache();
    await expect(cache.append('k', 'item')).rejects.toBeInstanceOf(ClosedError);
    await expect(cache.delete('k')).rejects.toBeInstanceOf(ClosedError);
    expect(cache.stats()).toMatchObject({ pending: 0, pendingBytes: 0 });
    expect(storedValue(storage, 'k')).toBe('v');
    expect(storage.inner.peekItems('k') ?? []).toEqual([]);
  });

  it('refuses to re-queue dead letters', async () => {
    const { cache, storage } = await memoryCache();
    storage.rejectKey('k');
    await cache.set('k', 1);
    await settleWithTimers(cache.flush());
    expect(cache.deadLetters()).toHaveLength(1);
    await settleWithTimers(cache.close());
    expect(() => cache.retryDeadLetters()).toThrow(ClosedError);
    expect(cache.stats()).toMatchObject({ pending: 0, deadLetters: 1 });
  });

  it('is closed for every call once abandoned, and the aborted store calls do not mark the store unhealthy', async () => {
    const storage = new HeldWrites();
    const { cache } = await memoryCache({ storage });
    const changes: unknown[] = [];
    cache.on('health', (change) => changes.push(change));
    await cache.set('k', 1);
    await vi.advanceTimersByTimeAsync(20); // the flush is now in flight, held by the store
    expect(storage.signals).toHaveLength(1);
    await cache[ABANDON]();
    expect(storage.signals[0]?.aborted).toBe(true);
    expect(cache.isOpen).toBe(false);
    await expect(cache.get('k')).rejects.toBeInstanceOf(ClosedError);
    await expect(cache.getWithItems('k')).rejects.toBeInstanceOf(ClosedError);
    await expect(cache.flush()).rejects.toBeInstanceOf(ClosedError);
    expect(cache.health).toBe('healthy');
    expect(changes).toEqual([]);
  });
});

describe('key validation', () => {
  it('rejects an invalid key in getWithItems and append, changing nothing', async () => {
    const { cache } = await memoryCache();
    await expect(cache.getWithItems('')).rejects.toBeInstanceOf(ValidationError);
    await expect(cache.append('', 'item')).rejects.toBeInstanceOf(ValidationError);
    expect(cache.stats()).toMatchObject({ pending: 0, hits: 0, misses: 0, loads: 0 });
  });
});
