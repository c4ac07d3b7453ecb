import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { entryBytes } from '../../../src/cache/entry.js';
import { memoryCache, settleWithTimers } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A cache whose store refused the items appended to `log`: they are dead letters. */
async function deadItems() {
  const { cache, storage } = await memoryCache();
  await cache.set('log', 'v');
  await settleWithTimers(cache.flush());
  storage.rejectKey('log');
  await cache.append('log', 1);
  await cache.append('log', 2);
  await settleWithTimers(cache.flush());
  expect(cache.stats()).toMatchObject({ deadLetters: 2, pending: 0, pendingBytes: 0 });
  storage.acceptKey('log');
  return { cache, storage };
}

describe('re-queued dead-lettered items', () => {
  it('are pending again and reach the store', async () => {
    const { cache, storage } = await deadItems();
    storage.goDown();
    expect(cache.retryDeadLetters()).toBe(2);
    expect(cache.stats()).toMatchObject({ deadLetters: 0, pending: 1 });
    expect(cache.stats().pendingBytes).toBeGreaterThan(0);
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(storage.inner.peekItems('log').map((i) => JSON.parse(i.json))).toEqual([1, 2]);
  });

  it('are dropped when the key was deleted after they were appended', async () => {
    const { cache, storage } = await deadItems();
    storage.goDown();
    await cache.delete('log');
    expect(cache.retryDeadLetters()).toBe(2);
    // Only the delete is pending: the items went with the key.
    expect(cache.stats()).toMatchObject({ deadLetters: 0, pending: 1, pendingBytes: entryBytes('log', 0) });
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(cache.stats()).toMatchObject({ pending: 0, superseded: 0 });
    expect(storage.inner.peek('log')?.json).toBeNull();
    expect(await cache.getWithItems('log')).toBeUndefined();
  });
});
