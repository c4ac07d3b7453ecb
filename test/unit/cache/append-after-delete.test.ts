import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CacheEvents } from '../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../src/storage/contract/version.js';
import { memoryCache, settleWithTimers } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('an item appended after an unflushed local delete of its key', () => {
  it('is sent, and joins the log of a value another instance wrote between the delete and the item', async () => {
    const { cache, storage } = await memoryCache({
      flush: { batchSize: 50, intervalMs: 60_000, concurrency: 2 },
    });
    await vi.advanceTimersByTimeAsync(0); // the clock has read the store's high-water mark
    const superseded: CacheEvents['superseded'][] = [];
    cache.on('superseded', (event) => superseded.push(event));
    const deletedAt = Date.now();
    await cache.delete('k');
    await vi.advanceTimersByTimeAsync(5);
    await cache.append('k', 'after the delete');
    // Meanwhile another instance wrote the key, after the delete and before the item.
    await storage.inner.apply([
      { key: 'k', version: (deletedAt + 2) * LOGICAL_SLOTS, json: '"theirs"', expiresAt: null },
    ]);
    await settleWithTimers(cache.flush());
    expect(superseded.map((event) => event.key)).toEqual(['k']); // the delete lost to their value
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({
      value: 'theirs',
      items: ['after the delete'],
    });
    await settleWithTimers(cache.close());
  });
});
