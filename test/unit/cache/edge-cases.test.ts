import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  BackpressureError,
  ClosedError,
  createHybridCache,
  SqliteStorage,
  type Storage,
  StorageConfigurationError,
  ValidationError,
} from '../../../src/index.js';
import {
  faultyMemory,
  memoryCache,
  settleWithTimers,
  silentLogger,
  storedValue,
} from '../../helpers/cache.js';
import { misanswerApply } from '../../helpers/misanswer.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-edge-'));
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

describe('TTL edge cases', () => {
  it('stores a fractional TTL as a whole-millisecond expiry every store accepts', async () => {
    const storage = new SqliteStorage({ path: join(dir, 'store.db') });
    const { cache } = await memoryCache({ storage });
    const before = Date.now();
    await cache.set('k', 'v', { ttlMs: 60_000.5 });
    await cache.flush();
    expect(cache.deadLetters()).toEqual([]);
    const entry = (await storage.getMany(['k'])).get('k');
    expect(Number.isInteger(entry?.expiresAt)).toBe(true);
    expect(entry?.expiresAt).toBeGreaterThanOrEqual(before + 60_001);
    await cache.close();
    await storage.close();
  });

  it('rejects a TTL that puts the expiry out of range, changing nothing', async () => {
    const { cache, storage } = await memoryCache();
    await expect(cache.set('k', 'v', { ttlMs: 1e300 })).rejects.toBeInstanceOf(ValidationError);
    await cache.flush();
    expect(cache.stats().pending).toBe(0);
    expect(storage.calls.apply).toBe(0);
  });
});

describe('keys', () => {
  it('rejects keys that are not well-formed Unicode (a store would keep a different key)', async () => {
    const { cache } = await memoryCache();
    await expect(cache.set('a\uD800', 1)).rejects.toBeInstanceOf(ValidationError);
    await expect(cache.set('\uDC00b', 1)).rejects.toBeInstanceOf(ValidationError);
    await cache.set('ok-\uD83D\uDE00', 1); // a proper surrogate pair is fine
    expect(await cache.get('ok-\uD83D\uDE00')).toBe(1);
  });
});

describe('sizes', () => {
  it('refuses options where the largest value could not fit in the LRU', async () => {
    await expect(memoryCache({ maxBytes: 1_000, maxValueBytes: 4_000 })).rejects.toThrow(
      /maxBytes .* must leave room/,
    );
  });
});

describe('versions from elsewhere', () => {
  it('forgets its own write when the store reports a newer one, and reads that one', async () => {
    const { cache, storage } = await memoryCache();
    await cache.set('k', 'mine');
    // Another writer's newer version lands first.
    const newer = (Date.now() + 60_000) * 1024;
    await storage.apply([{ key: 'k', version: newer, json: '"theirs"', expiresAt: null }]);
    await cache.flush();
    expect(storedValue(storage, 'k')).toBe('theirs');
    expect(await cache.get('k')).toBe('theirs');
  });

  it('does not let a re-queued dead letter shadow a newer write', async () => {
    const { cache, storage } = await memoryCache();
    storage.rejectKey('k');
    await cache.set('k', 'old');
    await cache.flush();
    storage.acceptKey('k');
    await cache.set('k', 'new');
    await cache.flush();
    expect(cache.retryDeadLetters()).toBe(1);
    expect(await cache.get('k')).toBe('new');
    await cache.flush();
    expect(await cache.get('k')).toBe('new');
    expect(storedValue(storage, 'k')).toBe('new');
    expect(cache.stats().pending).toBe(0);
  });
});

describe('slow reads', () => {
  it('never caches a read snapshot older than a write that was flushed and evicted meanwhile', async () => {
    vi.useFakeTimers();
    const inner = faultyMemory();
    await inner.apply([{ key: 'k', version: 1, json: '"old"', expiresAt: null }]);
    let slowReads = true;
    const storage: Storage = {
      async getMany(keys, opts) {
        const snapshot = await inner.getMany(keys, opts);
        if (slowReads) await new Promise((resolve) => setTimeout(resolve, 1_000));
        return snapshot;
      },
      apply: (writes, opts) => inner.apply(writes, opts),
      highWaterMark: (opts) => inner.highWaterMark(opts),
    };
    const cache = await createHybridCache<string>({
      storage,
      outbox: { durability: 'none' },
      maxEntries: 1,
      flush: { batchSize: 10, intervalMs: 1, concurrency: 1 },
      logger: silentLogger,
    });
    const read = cache.get('k'); // snapshot "old" taken now, answered in 1 s
    await vi.advanceTimersByTimeAsync(0);
    await cache.set('k', 'new');
    await cache.flush();
    await cache.set('other', 'x'); // evicts the clean "new" (maxEntries 1)
    await cache.flush();
    slowReads = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await read).toBe('new');
    expect(await cache.get('k')).toBe('new');
  });
});

describe('close', () => {
  it('rejects a flush still waiting when the cache closes, instead of leaving it hanging', async () => {
    vi.useFakeTimers();
    const { cache, storage } = await memoryCache();
    storage.goDown();
    await cache.set('k', 1);
    const waiting = cache.flush();
    const rejected = expect(waiting).rejects.toBeInstanceOf(ClosedError);
    const closing = cache.close({ timeoutMs: 100 });
    await vi.advanceTimersByTimeAsync(100);
    expect(await closing).toEqual({ pending: 1, drained: false });
    await rejected;
  });

  it('drains writes accepted just before close() whose outbox commit was still pending', async () => {
    const { cache, storage } = await memoryCache({
      outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    });
    const writes = [cache.set('a', 1), cache.set('b', 2)];
    const result = await cache.close({ timeoutMs: 5_000 });
    await Promise.all(writes);
    expect(result).toEqual({ pending: 0, drained: true });
    expect(storedValue(storage, 'a')).toBe(1);
    expect(storedValue(storage, 'b')).toBe(2);
  });

  it('answers with ClosedError for flush after close', async () => {
    const { cache } = await memoryCache();
    await cache.close();
    await expect(cache.flush()).rejects.toBeInstanceOf(ClosedError);
  });
});

describe('flusher details', () => {
  it('sends a full batch at once instead of waiting for the interval', async () => {
    vi.useFakeTimers();
    const { cache, storage } = await memoryCache({
      flush: { batchSize: 10, intervalMs: 60_000, concurrency: 1 },
    });
    for (let i = 0; i < 9; i++) await cache.set(`k${i}`, i);
    await vi.advanceTimersByTimeAsync(0);
    expect(storage.calls.apply).toBe(0);
    await cache.set('k9', 9);
    await vi.advanceTimersByTimeAsync(0);
    expect(storage.calls.apply).toBe(1);
    expect(storage.calls.writesApplied).toBe(10);
  });

  it('numbers retry attempts and resets them after a success', async () => {
    vi.useFakeTimers();
    const { cache, storage } = await memoryCache({ breaker: { failureThreshold: 100, halfOpenAfterMs: 1 } });
    const attempts: number[] = [];
    cache.on('retry', ({ attempt }) => attempts.push(attempt));
    storage.failNext(3);
    await cache.set('a', 1);
    await settleWithTimers(cache.flush());
    storage.failNext(1);
    await cache.set('b', 2);
    await settleWithTimers(cache.flush());
    expect(attempts).toEqual([1, 2, 3, 1]);
  });

  it('keeps writes queued (never dead-letters them) when the store is misconfigured, and reports offline', async () => {
    vi.useFakeTimers();
    const { cache, storage } = await memoryCache();
    const apply = storage.apply.bind(storage);
    let misconfigured = true;
    storage.apply = async (writes, opts) => {
      if (misconfigured) throw new StorageConfigurationError('apply the migration');
      return apply(writes, opts);
    };
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(cache.stats()).toMatchObject({ health: 'offline', pending: 1, deadLetters: 0 });
    misconfigured = false;
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'a')).toBe(1);
  });

  it('retries a batch when the adapter answers with the wrong number of results', async () => {
    vi.useFakeTimers();
    const { cache, storage } = await memoryCache();
    misanswerApply(storage, 1, () => []);
    await cache.set('a', 1);
    await cache.set('b', 2);
    await settleWithTimers(cache.flush());
    expect(cache.stats()).toMatchObject({ pending: 0, deadLetters: 0 });
    expect(cache.stats().retries).toBeGreaterThan(0);
    expect(storedValue(storage, 'b')).toBe(2);
  });
});

describe('stats and budgets', () => {
  it('reports how long the oldest write has waited, and 0 once everything is flushed', async () => {
    vi.useFakeTimers();
    const { cache, storage } = await memoryCache();
    storage.goDown();
    await cache.set('old', 1);
    await vi.advanceTimersByTimeAsync(1_000);
    await cache.set('new', 2);
    await cache.set('old', 3); // rewriting keeps the key's original wait
    expect(cache.stats().oldestPendingAgeMs).toBe(1_000);
    await vi.advanceTimersByTimeAsync(500);
    expect(cache.stats().oldestPendingAgeMs).toBe(1_500);
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(cache.stats().oldestPendingAgeMs).toBe(0);
  });

  it('counts writes still committing to the outbox against the backlog limit', async () => {
    const { cache, storage } = await memoryCache({
      outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
      maxPendingBytes: 10_000,
      maxValueBytes: 2_000,
    });
    storage.goDown();
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => cache.set(`k${i}`, 'x'.repeat(1_500))),
    );
    const accepted = results.filter((r) => r.status === 'fulfilled').length;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(10);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({
      reason: expect.any(BackpressureError),
    });
    expect(cache.stats().pendingBytes).toBeLessThanOrEqual(10_000);
    await cache.close({ timeoutMs: 10 });
  });

  it('re-queues only the dead letters asked for, and counts the rest', async () => {
    const { cache, storage } = await memoryCache();
    storage.rejectKey('p1');
    storage.rejectKey('p2');
    await cache.set('p1', 1);
    await cache.set('p2', 2);
    await cache.flush();
    expect(cache.stats().deadLetters).toBe(2);
    storage.acceptKey('p1');
    expect(cache.retryDeadLetters(['p1'])).toBe(1);
    await cache.flush();
    expect(cache.stats().deadLetters).toBe(1);
    expect(cache.deadLetters().map((l) => l.key)).toEqual(['p2']);
    expect(storedValue(storage, 'p1')).toBe(1);
  });
});
