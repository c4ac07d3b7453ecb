import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CacheEvents } from '../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../src/storage/contract/version.js';
import { memoryCache, settleWithTimers, storedValue } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/**
 * A cache anchored to the store, then a value written to the store by another instance whose clock
 * runs an hour ahead: its version is above anything this cache's clock would mint by itself.
 */
async function newerValueFromElsewhere() {
  const { cache, storage } = await memoryCache({ maxEntries: 100 });
  await vi.advanceTimersByTimeAsync(0); // the clock has read the store's high-water mark
  const aheadVersion = (Date.now() + 3_600_000) * LOGICAL_SLOTS;
  await storage.inner.apply([{ key: 'k', version: aheadVersion, json: '"theirs"', expiresAt: null }]);
  const superseded: CacheEvents['superseded'][] = [];
  cache.on('superseded', (event) => superseded.push(event));
  return { cache, storage, superseded };
}

describe('a write after reading a newer value written elsewhere', () => {
  it('read with get: is given a later version, and replaces that value in the store', async () => {
    const { cache, storage, superseded } = await newerValueFromElsewhere();
    expect(await settleWithTimers(cache.get('k'))).toBe('theirs');
    await cache.set('k', 'mine');
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'k')).toBe('mine');
    expect(superseded).toEqual([]);
    await settleWithTimers(cache.close());
  });

  it('read with getWithItems: is given a later version, and replaces that value in the store', async () => {
    const { cache, storage, superseded } = await newerValueFromElsewhere();
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: 'theirs', items: [] });
    await cache.set('k', 'mine');
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'k')).toBe('mine');
    expect(superseded).toEqual([]);
    await settleWithTimers(cache.close());
  });
});
