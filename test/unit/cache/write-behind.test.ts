import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  BackpressureError,
  ClosedError,
  FlushTimeoutError,
  type Health,
  PermanentStorageError,
  StorageUnavailableError,
  ValidationError,
  ValueTooLargeError,
} from '../../../src/index.js';
import { faultyMemory, memoryCache, settleWithTimers, storedValue } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('read-your-writes', () => {
  it('returns the latest write even after the LRU has evicted everything else', async () => {
    const { cache } = await memoryCache({ maxEntries: 3 });
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, { i });
    for (let i = 0; i < 100; i++) expect(await cache.get(`k${i}`)).toEqual({ i });
    await cache.flush();
    // After the flush, entries are clean and evictable: the LRU keeps 3, the rest read through.
    expect(cache.stats().entries).toBe(3);
    expect(cache.stats().evictions).toBeGreaterThan(0);
    for (let i = 0; i < 100; i++) expect(await cache.get(`k${i}`)).toEqual({ i });
  });

  it('never evicts dirty entries, and serves them while the store is down', async () => {
    const { cache, storage } = await memoryCache({ maxEntries: 2 });
    storage.goDown();
    for (let i = 0; i < 50; i++) await cache.set(`k${i}`, i);
    await cache.delete('k7');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(cache.stats().pending).toBe(50);
    for (let i = 0; i < 50; i++) expect(await cache.get(`k${i}`)).toBe(i === 7 ? undefined : i);
    expect(cache.stats().misses).toBe(0);
  });

  it('reflects a delete at once, before it is flushed', async () => {
    const { cache, storage } = await memoryCache();
    await cache.set('a', 1);
    await cache.flush();
    await cache.delete('a');
    expect(await cache.get('a')).toBeUndefined();
    expect(storedValue(storage, 'a')).toBe(1);
    await cache.flush();
    expect(storedValue(storage, 'a')).toBeNull();
  });

  it('returns a copy of what was stored, not the caller’s object', async () => {
    const { cache } = await memoryCache();
    const value = { list: [1] };
    await cache.set('a', value);
    value.list.push(2);
    expect(await cache.get('a')).toEqual({ list: [1] });
  });
});

describe('coalescing and batching', () => {
  it('turns 1,000 writes to one key into one remote write', async () => {
    const { cache, storage } = await memoryCache();
    for (let i = 0; i < 1_000; i++) await cache.set('hot', { i });
    await cache.flush();
    expect(storage.calls.writesApplied).toBe(1);
    expect(storedValue(storage, 'hot')).toEqual({ i: 999 });
    expect(cache.stats()).toMatchObject({ flushedWrites: 1, coalescedWrites: 999, pending: 0 });
  });

  it('waits up to intervalMs to fill a batch, then sends batches of at most batchSize', async () => {
    const { cache, storage } = await memoryCache({
      flush: { batchSize: 10, intervalMs: 100, concurrency: 1 },
    });
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, i);
    await vi.advanceTimersByTimeAsync(99);
    expect(storage.calls.apply).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(storage.calls.apply).toBe(1);
    for (let i = 0; i < 25; i++) await cache.set(`m${i}`, i);
    await cache.flush();
    expect(storage.calls.apply).toBe(4); // 5, then 10 + 10 + 5
    expect(storage.calls.writesApplied).toBe(30);
  });

  it('keeps one write per key in flight and sends a newer one after it settles', async () => {
    const { cache, storage } = await memoryCache();
    storage.setLatency(100);
    const applied: string[] = [];
    const apply = storage.apply.bind(storage);
    storage.apply = async (writes, opts) => {
      applied.push(...writes.map((w) => `${w.key}@${w.json}`));
      return apply(writes, opts);
    };
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(20); // first write in flight
    await cache.set('a', 2);
    await cache.set('a', 3);
    await vi.advanceTimersByTimeAsync(50);
    expect(applied).toEqual(['a@1']);
    await settleWithTimers(cache.flush());
    expect(applied).toEqual(['a@1', 'a@3']);
    expect(storedValue(storage, 'a')).toBe(3);
    expect(cache.stats().pending).toBe(0);
  });

  it('flushes different keys in parallel up to the concurrency limit', async () => {
    const { cache, storage } = await memoryCache({ flush: { batchSize: 1, intervalMs: 0, concurrency: 3 } });
    storage.setLatency(100);
    let active = 0;
    let peak = 0;
    const apply = storage.apply.bind(storage);
    storage.apply = async (writes, opts) => {
      peak = Math.max(peak, ++active);
      try {
        return await apply(writes, opts);
      } finally {
        active--;
      }
    };
    for (let i = 0; i < 9; i++) await cache.set(`k${i}`, i);
    await settleWithTimers(cache.flush());
    expect(peak).toBe(3);
    expect(storage.calls.writesApplied).toBe(9);
  });
});

describe('transient failures', () => {
  it('retries on a timer until the store returns, with no further writes', async () => {
    const { cache, storage } = await memoryCache();
    const retries: number[] = [];
    cache.on('retry', ({ delayMs }) => retries.push(delayMs));
    storage.goDown();
    await cache.set('a', 'x');
    await cache.delete('b');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(cache.stats().pending).toBe(2);
    expect(retries.length).toBeGreaterThan(2);
    expect(Math.max(...retries)).toBeLessThanOrEqual(2_000); // maxMs 1000, or the breaker's half-open wait
    storage.comeUp();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(cache.stats().pending).toBe(0);
    expect(storedValue(storage, 'a')).toBe('x');
    expect(storedValue(storage, 'b')).toBeNull();
    expect(cache.stats().health).toBe('healthy');
  });

  it('recovers from a few failed calls without losing a write', async () => {
    const { cache, storage } = await memoryCache();
    storage.failNext(2);
    for (let i = 0; i < 20; i++) await cache.set(`k${i}`, i);
    await vi.advanceTimersByTimeAsync(5_000);
    for (let i = 0; i < 20; i++) expect(storedValue(storage, `k${i}`)).toBe(i);
    expect(cache.stats().retries).toBeGreaterThanOrEqual(2);
    expect(cache.stats().deadLetters).toBe(0);
  });

  it('treats a write timeout as transient and retries it', async () => {
    const { cache, storage } = await memoryCache({ writeTimeoutMs: 100 });
    storage.setLatency(1_000);
    await cache.set('slow', 1);
    await vi.advanceTimersByTimeAsync(300);
    expect(cache.stats().retries).toBeGreaterThan(0);
    storage.setLatency(0);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(storedValue(storage, 'slow')).toBe(1);
  });

  it('never lets an older value win after a commit whose answer was lost', async () => {
    const { cache, storage } = await memoryCache();
    storage.commitThenFailNext(1);
    await cache.set('a', 'v1');
    await vi.advanceTimersByTimeAsync(20); // v1 committed, the call "failed"
    expect(storedValue(storage, 'a')).toBe('v1');
    await cache.set('a', 'v2');
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'a')).toBe('v2');
    // A replay of the old batch (as a retry would send) comes back stale.
    const [result] = await storage.apply([{ key: 'a', version: 1, json: '"v1"', expiresAt: null }]);
    expect(result?.status).toBe('stale');
    expect(storedValue(storage, 'a')).toBe('v2');
    expect(await cache.get('a')).toBe('v2');
  });
});

describe('circuit breaker and health', () => {
  it('goes degraded, then offline, then back to healthy through a half-open probe', async () => {
    const { cache, storage } = await memoryCache();
    const changes: Array<[Health, Health]> = [];
    cache.on('health', ({ from, to }) => changes.push([from, to]));
    storage.goDown();
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(cache.stats().health).toBe('offline');
    storage.comeUp();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(cache.stats().health).toBe('healthy');
    expect(changes).toEqual([
      ['healthy', 'degraded'],
      ['degraded', 'offline'],
      ['offline', 'degraded'],
      ['degraded', 'healthy'],
    ]);
  });

  it('fails a miss fast with StorageUnavailableError while the breaker is open', async () => {
    const { cache, storage } = await memoryCache();
    storage.goDown();
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(cache.stats().health).toBe('offline');
    storage.setLatency(60_000);
    const readsBefore = storage.calls.getMany;
    const miss = cache.get('never-written');
    await expect(miss).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(miss).rejects.toThrow(/circuit breaker open/);
    expect(storage.calls.getMany).toBe(readsBefore);
    expect(await cache.get('a')).toBe(1); // memory still answers
  });

  it('rejects a miss with StorageUnavailableError when the read times out', async () => {
    const { cache, storage } = await memoryCache({ readTimeoutMs: 200 });
    storage.setLatency(10_000);
    const miss = cache.get('k');
    const settled = expect(miss).rejects.toBeInstanceOf(StorageUnavailableError);
    await vi.advanceTimersByTimeAsync(200);
    await settled;
  });

  it('reads a miss from the store once, however many callers ask at once', async () => {
    const storage = faultyMemory();
    await storage.apply([{ key: 'k', version: 1, json: '"stored"', expiresAt: null }]);
    const { cache } = await memoryCache({ storage });
    const reads = await Promise.all(Array.from({ length: 10 }, () => cache.get('k')));
    expect(reads).toEqual(Array(10).fill('stored'));
    expect(storage.calls.getMany).toBe(1);
    expect(await cache.get('k')).toBe('stored');
    expect(storage.calls.getMany).toBe(1);
    expect(cache.stats()).toMatchObject({ misses: 10, hits: 1, loads: 1 });
  });
});

describe('permanent failures', () => {
  it('dead-letters a poison key while its batch-mates land', async () => {
    const { cache, storage } = await memoryCache();
    const letters: string[] = [];
    cache.on('deadLetter', (letter) => letters.push(letter.key));
    storage.rejectKey('poison', 'violates a check constraint');
    for (let i = 0; i < 10; i++) await cache.set(`ok${i}`, i);
    await cache.set('poison', 'bad');
    await cache.flush();
    for (let i = 0; i < 10; i++) expect(storedValue(storage, `ok${i}`)).toBe(i);
    expect(storedValue(storage, 'poison')).toBeUndefined();
    expect(letters).toEqual(['poison']);
    expect(cache.deadLetters()).toMatchObject([
      { key: 'poison', json: '"bad"', error: 'violates a check constraint' },
    ]);
    expect(cache.stats()).toMatchObject({ deadLetters: 1, pending: 0 });
  });

  it('splits a batch that fails as a whole to isolate the culprit', async () => {
    const { cache, storage } = await memoryCache();
    const apply = storage.apply.bind(storage);
    storage.apply = async (writes, opts) => {
      if (writes.some((w) => w.key === 'k5')) {
        throw new PermanentStorageError('batch rejected: invalid input in one row');
      }
      return apply(writes, opts);
    };
    for (let i = 0; i < 16; i++) await cache.set(`k${i}`, i);
    await cache.flush();
    expect(cache.deadLetters().map((l) => l.key)).toEqual(['k5']);
    for (let i = 0; i < 16; i++) expect(storedValue(storage, `k${i}`)).toBe(i === 5 ? undefined : i);
  });

  it('re-queues dead letters on request', async () => {
    const { cache, storage } = await memoryCache();
    storage.rejectKey('p');
    await cache.set('p', 'value');
    await cache.flush();
    expect(cache.deadLetters()).toHaveLength(1);
    storage.acceptKey('p');
    expect(cache.retryDeadLetters()).toBe(1);
    await cache.flush();
    expect(storedValue(storage, 'p')).toBe('value');
    expect(cache.deadLetters()).toHaveLength(0);
    expect(cache.stats().deadLetters).toBe(0);
  });
});

describe('backpressure', () => {
  it('rejects writes past maxPendingBytes and keeps everything already accepted', async () => {
    const { cache, storage } = await memoryCache({ maxPendingBytes: 4_000, maxValueBytes: 1_000 });
    storage.goDown();
    const accepted: number[] = [];
    let rejection: unknown;
    for (let i = 0; i < 100; i++) {
      try {
        await cache.set(`k${i}`, 'x'.repeat(500));
        accepted.push(i);
      } catch (error) {
        rejection = error;
        break;
      }
    }
    expect(rejection).toBeInstanceOf(BackpressureError);
    expect(accepted.length).toBeGreaterThan(3);
    expect(cache.stats().pendingBytes).toBeLessThanOrEqual(4_000);
    // Overwriting an accepted key with a value no larger still works.
    await cache.set('k0', 'y'.repeat(400));
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'k0')).toBe('y'.repeat(400));
    for (const i of accepted.slice(1)) expect(storedValue(storage, `k${i}`)).toBe('x'.repeat(500));
    await cache.set('after', 'x'.repeat(500));
  });
});

describe('bad input', () => {
  const cases: Array<[string, (c: Awaited<ReturnType<typeof memoryCache>>['cache']) => Promise<unknown>]> = [
    ['empty key', (c) => c.set('', 1)],
    ['non-string key', (c) => c.set(42 as unknown as string, 1)],
    ['key over 512 bytes', (c) => c.set('é'.repeat(257), 1)],
    ['key with NUL', (c) => c.set('a\u0000b', 1)],
    ['key with a lone surrogate', (c) => c.set('a\uD800', 1)],
    ['undefined value', (c) => c.set('k', undefined)],
    ['function value', (c) => c.set('k', () => 1)],
    ['BigInt value', (c) => c.set('k', 1n)],
    ['circular value', (c) => c.set('k', circular())],
    ['value over maxValueBytes', (c) => c.set('k', 'x'.repeat(2_000))],
    ['negative TTL', (c) => c.set('k', 1, { ttlMs: -1 })],
    ['NaN TTL', (c) => c.set('k', 1, { ttlMs: Number.NaN })],
    ['infinite TTL', (c) => c.set('k', 1, { ttlMs: Number.POSITIVE_INFINITY })],
    ['empty key on delete', (c) => c.delete('')],
    ['empty key on get', (c) => c.get('')],
  ];
  it('says how large a too-large value is and what the limit is (ValueTooLargeError)', async () => {
    const { cache } = await memoryCache({ maxValueBytes: 1_000 });
    const error = await cache.set('k', 'é'.repeat(600)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValueTooLargeError);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ code: 'ERR_VALIDATION', bytes: 1_202, maxValueBytes: 1_000 });
    expect((error as Error).message).toBe(
      'value is 1202 bytes serialized; the limit (maxValueBytes) is 1000',
    );
  });

  it.each(cases)('rejects %s with ValidationError and changes nothing', async (_label, act) => {
    const { cache, storage } = await memoryCache({ maxValueBytes: 1_000 });
    await cache.set('k', 'original');
    await cache.flush();
    // The feed's counters move with time and with the set above being announced: not this call's doing.
    const settled = () => {
      const { feedLagMs: _lag, feedChanges: _changes, feedState: _state, ...rest } = cache.stats();
      return rest;
    };
    const before = { stats: settled(), stored: storage.inner.dump() };
    await expect(act(cache)).rejects.toBeInstanceOf(ValidationError);
    await cache.flush();
    expect(settled()).toEqual(before.stats);
    expect(storage.inner.dump()).toEqual(before.stored);
    expect(await cache.get('k')).toBe('original');
  });

  it('accepts a key of exactly 512 bytes', async () => {
    const { cache } = await memoryCache();
    const key = 'é'.repeat(256);
    await cache.set(key, 1);
    expect(await cache.get(key)).toBe(1);
  });
});

describe('TTL', () => {
  it('expires entries at their absolute time in memory and in the store', async () => {
    const { cache, storage } = await memoryCache();
    const writtenAt = Date.now();
    await cache.set('short', 'v', { ttlMs: 1_000 });
    await cache.flush();
    expect(storage.inner.peek('short')?.expiresAt).toBe(writtenAt + 1_000);
    await vi.advanceTimersByTimeAsync(999);
    expect(await cache.get('short')).toBe('v');
    await vi.advanceTimersByTimeAsync(10);
    expect(await cache.get('short')).toBeUndefined();
  });

  it('applies defaultTtlMs when no TTL is given, and 0 means no expiry', async () => {
    const { cache, storage } = await memoryCache({ defaultTtlMs: 500 });
    await cache.set('d', 1);
    await cache.set('forever', 1, { ttlMs: 0 });
    await cache.flush();
    expect(storage.inner.peek('d')?.expiresAt).not.toBeNull();
    expect(storage.inner.peek('forever')?.expiresAt).toBeNull();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await cache.get('d')).toBeUndefined();
    expect(await cache.get('forever')).toBe(1);
  });

  it('does not resurrect an older stored value when a newer write has already expired', async () => {
    const { cache, storage } = await memoryCache();
    await cache.set('k', 'old');
    await cache.flush();
    await cache.set('k', 'new', { ttlMs: 50 });
    await vi.advanceTimersByTimeAsync(100);
    expect(await cache.get('k')).toBeUndefined();
    await cache.flush();
    expect(storage.inner.peek('k')?.json).toBe('"new"');
    expect(await cache.get('k')).toBeUndefined();
  });
});

describe('versions', () => {
  it('writes with a version above any version observed from the store', async () => {
    const storage = faultyMemory();
    const future = (Date.now() + 3_600_000) * 1024;
    await storage.apply([{ key: 'k', version: future, json: '"from the future"', expiresAt: null }]);
    const { cache } = await memoryCache({ storage });
    expect(await cache.get('k')).toBe('from the future');
    await cache.set('k', 'mine');
    await cache.flush();
    expect(storage.inner.peek('k')?.json).toBe('"mine"');
    expect(storage.inner.peek('k')?.version).toBeGreaterThan(future);
  });
});

describe('flush and close', () => {
  it('rejects flush on timeout and loses nothing', async () => {
    const { cache, storage } = await memoryCache();
    storage.goDown();
    await cache.set('a', 1);
    const flushing = cache.flush({ timeoutMs: 1_000 });
    const settled = expect(flushing).rejects.toBeInstanceOf(FlushTimeoutError);
    await vi.advanceTimersByTimeAsync(1_000);
    await settled;
    expect(cache.stats().pending).toBe(1);
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'a')).toBe(1);
  });

  it('close drains, then rejects further use with ClosedError', async () => {
    const { cache, storage } = await memoryCache({
      flush: { batchSize: 10, intervalMs: 1_000, concurrency: 1 },
    });
    for (let i = 0; i < 25; i++) await cache.set(`k${i}`, i);
    expect(await cache.close()).toEqual({ pending: 0, drained: true });
    for (let i = 0; i < 25; i++) expect(storedValue(storage, `k${i}`)).toBe(i);
    await expect(cache.set('x', 1)).rejects.toBeInstanceOf(ClosedError);
    await expect(cache.get('x')).rejects.toBeInstanceOf(ClosedError);
  });

  it('close reports what stayed pending when the store is down past the deadline', async () => {
    const { cache, storage } = await memoryCache();
    storage.goDown();
    await cache.set('a', 1);
    await cache.set('b', 2);
    const closing = cache.close({ timeoutMs: 500 });
    await expect(cache.set('c', 3)).rejects.toBeInstanceOf(ClosedError);
    await vi.advanceTimersByTimeAsync(500);
    expect(await closing).toEqual({ pending: 2, drained: false });
  });

  it('aborting a slow in-flight write at close does not count against the store', async () => {
    const { cache, storage } = await memoryCache();
    const changes: Health[] = [];
    cache.on('health', ({ to }) => changes.push(to));
    storage.setLatency(10_000);
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(20);
    expect(storage.calls.apply).toBe(1);
    const closing = cache.close({ timeoutMs: 100 });
    await vi.advanceTimersByTimeAsync(100);
    expect(await closing).toEqual({ pending: 1, drained: false });
    expect(cache.health).toBe('healthy');
    expect(changes).toEqual([]);
  });
});

describe('two instances over one store', () => {
  it('converge to the newest write, which each reads once its own copy is gone', async () => {
    const storage = faultyMemory();
    const a = (await memoryCache({ storage, maxEntries: 1 })).cache;
    const b = (await memoryCache({ storage, maxEntries: 1 })).cache;
    await a.set('k', 'from a');
    await vi.advanceTimersByTimeAsync(1);
    await b.set('k', 'from b');
    await b.flush();
    await a.flush(); // older version: stale in the store
    expect(storedValue(storage, 'k')).toBe('from b');
    await a.set('other', 1); // evicts a's clean copy of k
    await a.flush();
    await a.set('other2', 1);
    await a.flush();
    expect(await a.get('k')).toBe('from b');
    expect(await b.get('k')).toBe('from b');
  });
});

function circular() {
  const o: Record<string, unknown> = {};
  o.self = o;
  return o;
}
