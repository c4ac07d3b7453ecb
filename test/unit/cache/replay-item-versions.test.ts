import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ABANDON } from '../../../src/cache/hybrid-cache.js';
import { createHybridCache, LOGICAL_SLOTS, type Storage } from '../../../src/index.js';
import { appended, item, put } from '../../../src/testing/index.js';
import { faultyMemory, silentLogger } from '../../helpers/cache.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-replay-items-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function durableCache(storage: Storage) {
  return createHybridCache<unknown>({
    storage,
    outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    flush: { batchSize: 50, intervalMs: 5, concurrency: 2 },
    retry: { baseMs: 5, maxMs: 20 },
    breaker: { failureThreshold: 1_000, halfOpenAfterMs: 10 },
    logger: silentLogger,
  });
}

const HOUR_MS = 3_600_000;

describe('items replayed from the outbox after a crash', () => {
  it('appended before the store was ever reached are placed after the items the store already holds', async () => {
    const storage = faultyMemory();
    // Another host, its clock an hour ahead, wrote the value and an item.
    const ahead = (Date.now() + HOUR_MS) * LOGICAL_SLOTS;
    await storage.apply([put('log', ahead, 'header'), appended('log', [item(ahead + 1, 'theirs')])]);
    storage.goDown();
    const first = await durableCache(storage);
    await first.append('log', 'mine');
    await first[ABANDON]();

    storage.comeUp();
    const second = await durableCache(storage);
    await second.flush({ timeoutMs: 10_000 });
    expect(storage.inner.peekItems('log').map((i) => JSON.parse(i.json))).toEqual(['theirs', 'mine']);
    expect(await second.getWithItems('log')).toEqual({ value: 'header', items: ['theirs', 'mine'] });
    await second.close();
  });

  it('appended after the store was reached keep their version, before items the store took later', async () => {
    const storage = faultyMemory();
    await storage.apply([put('log', 1, 'header')]);
    const first = await durableCache(storage);
    await first.set('probe', 0);
    await first.flush({ timeoutMs: 10_000 }); // the clock has read the store's mark
    storage.goDown();
    await first.append('log', 'mine');
    await first[ABANDON]();

    // Another host appends an item a moment later than ours.
    const later = (Date.now() + 1) * LOGICAL_SLOTS;
    storage.comeUp();
    await storage.apply([appended('log', [item(later, 'theirs')])]);
    const second = await durableCache(storage);
    await second.flush({ timeoutMs: 10_000 });
    expect(storage.inner.peekItems('log').map((i) => JSON.parse(i.json))).toEqual(['mine', 'theirs']);
    await second.close();
  });
});
