import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryStorage, type StorageCallOptions, type StoredEntry } from '../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../src/storage/contract/version.js';
import { memoryCache, settleWithTimers } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/**
 * A store whose reads can be held: a held read answers only once released, and sees the store as it
 * was when the read arrived (a slow read whose snapshot predates writes that commit meanwhile), or
 * with `late`, as it is when released.
 */
class HeldReads extends MemoryStorage {
  #held: Array<() => void> | undefined;
  #late = false;
  reads = 0;

  hold({ late = false } = {}): void {
    this.#held = [];
    this.#late = late;
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const answer of held) answer();
  }

  override async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    this.reads++;
    const held = this.#held;
    const late = this.#late;
    const snapshot = late ? undefined : await super.getMany(keys, opts);
    if (held) await new Promise<void>((resolve) => held.push(resolve));
    return snapshot ?? super.getMany(keys, opts);
  }
}

/** A value stored by an earlier cache, and a second cache over the same store that never read it. */
async function storedByAnother(storage: HeldReads) {
  const writer = await memoryCache({ storage });
  await writer.cache.set('k', 'v');
  await settleWithTimers(writer.cache.close());
  const { cache } = await memoryCache({ storage });
  await vi.advanceTimersByTimeAsync(0); // the clock has read the store's high-water mark
  return cache;
}

describe('getWithItems while the key is being flushed', () => {
  it('asks the store again when a local item it began with was flushed while the store was answering without it', async () => {
    const storage = new HeldReads();
    const cache = await storedByAnother(storage);
    await cache.append('k', 'local');
    storage.hold();
    const read = cache.getWithItems('k');
    await vi.advanceTimersByTimeAsync(0);
    expect(storage.reads).toBe(1);
    await settleWithTimers(cache.flush()); // the item reaches the store; the held read predates it
    storage.release();
    expect(await settleWithTimers(read)).toEqual({ value: 'v', items: ['local'] });
    expect(storage.reads).toBe(2);
    await settleWithTimers(cache.close());
  });

  it('answers at once when its local items are still unflushed as the store answers', async () => {
    const storage = new HeldReads();
    const cache = await storedByAnother(storage);
    await cache.append('k', 'local');
    storage.hold();
    const read = cache.getWithItems('k');
    await vi.advanceTimersByTimeAsync(0);
    storage.release();
    expect(await settleWithTimers(read)).toEqual({ value: 'v', items: ['local'] });
    expect(storage.reads).toBe(1);
    await settleWithTimers(cache.close());
  });

  it('asks the store again when an item appended during the read was flushed before the store answered', async () => {
    const storage = new HeldReads();
    const cache = await storedByAnother(storage);
    storage.hold();
    const read = cache.getWithItems('k');
    await vi.advanceTimersByTimeAsync(0);
    await cache.append('k', 'during');
    await settleWithTimers(cache.flush());
    storage.release();
    expect(await settleWithTimers(read)).toEqual({ value: 'v', items: ['during'] });
    expect(storage.reads).toBe(2);
    await settleWithTimers(cache.close());
  });
});

describe('getWithItems of a value set here, whose stored items memory does not know', () => {
  it('asks the store again when the value was flushed while the store was answering that the key is absent', async () => {
    const storage = new HeldReads();
    const { cache } = await memoryCache({ storage });
    await vi.advanceTimersByTimeAsync(0); // the clock has read the store's high-water mark
    await cache.set('k', 'v');
    storage.hold();
    const read = cache.getWithItems('k');
    await vi.advanceTimersByTimeAsync(0);
    await settleWithTimers(cache.flush()); // the value reaches the store; the held read predates it
    storage.release();
    expect(await settleWithTimers(read)).toEqual({ value: 'v', items: [] });
    expect(storage.reads).toBe(2);
    await settleWithTimers(cache.close());
  });
});

describe('getWithItems while the store refuses the local items it began with', () => {
  it('asks the store again: a delete from elsewhere that refused them is what it answers', async () => {
    const storage = new HeldReads();
    const cache = await storedByAnother(storage);
    await cache.append('k', 'local');
    storage.hold();
    const read = cache.getWithItems('k');
    await vi.advanceTimersByTimeAsync(0);
    // Another instance deletes the key, at a version above the local item: the store refuses the item.
    await storage.apply([
      { key: 'k', version: (Date.now() + 60_000) * LOGICAL_SLOTS, json: null, expiresAt: null },
    ]);
    await settleWithTimers(cache.flush());
    expect(cache.stats()).toMatchObject({ pending: 0, superseded: 1 });
    storage.release();
    expect(await settleWithTimers(read)).toBeUndefined();
    expect(storage.reads).toBe(2);
    await settleWithTimers(cache.close());
  });
});
