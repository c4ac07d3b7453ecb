import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { entryBytes } from '../../../src/cache/entry.js';
import {
  BackpressureError,
  ClosedError,
  type HybridCacheOptions,
  OutboxError,
  type Storage,
  type StorageCallOptions,
  StorageUnavailableError,
  type StoredEntry,
  type VersionedWrite,
} from '../../../src/index.js';
import {
  capturingLogger,
  faultyMemory,
  memoryCache,
  settleWithTimers,
  storedValue,
} from '../../helpers/cache.js';

let dir: string;
beforeEach(() => {
  vi.useFakeTimers();
  dir = mkdtempSync(join(tmpdir(), 'hc-paths-'));
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

/** Serialized size of a string value as the cache counts it. */
const bytesOf = (key: string, value: unknown) => entryBytes(key, JSON.stringify(value).length);

/** A version newer than any the cache has issued so far (another writer's, a minute ahead). */
const newerVersion = () => (Date.now() + 60_000) * 1024;

/**
 * A MemoryStorage whose reads can be held: `snapshot: 'before'` reads the data when the call
 * arrives and answers on release; `'after'` waits for release, then reads. Records every read.
 */
class HeldReads implements Storage {
  readonly inner = faultyMemory();
  readonly reads: string[][] = [];
  readonly signals: Array<AbortSignal | undefined> = [];
  #held: { promise: Promise<void>; release: () => void } | undefined;

  constructor(private readonly snapshot: 'before' | 'after' = 'after') {}

  /** Holds the next reads until the returned function is called. */
  hold(): () => void {
    let release = () => {};
    const promise = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#held = { promise, release };
    return () => {
      this.#held = undefined;
      release();
    };
  }

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    this.reads.push([...keys]);
    this.signals.push(opts?.signal);
    const held = this.#held?.promise;
    if (this.snapshot === 'before') {
      const found = await this.inner.getMany(keys, opts);
      if (held) await held;
      return found;
    }
    if (held) await held;
    return this.inner.getMany(keys, opts);
  }

  apply(writes: VersionedWrite[], opts?: StorageCallOptions) {
    return this.inner.apply(writes, opts);
  }

  highWaterMark(opts?: StorageCallOptions) {
    return this.inner.highWaterMark(opts);
  }
}

async function cacheOver(storage: Storage, overrides: Partial<HybridCacheOptions> = {}) {
  const { cache } = await memoryCache({ storage, ...overrides });
  return cache;
}

describe('stats', () => {
  it('reports pending writes, then clean entries after the flush, and counts only real evictions', async () => {
    const { cache } = await memoryCache({ maxEntries: 2 });
    await cache.set('a', 'x'.repeat(100));
    await cache.set('b', 'y');
    expect(cache.stats()).toMatchObject({
      pending: 2,
      pendingBytes: bytesOf('a', 'x'.repeat(100)) + bytesOf('b', 'y'),
      entries: 0,
      bytes: 0,
    });
    // Overwriting with a smaller value shrinks the backlog.
    await cache.set('a', 'z');
    expect(cache.stats().pendingBytes).toBe(bytesOf('a', 'z') + bytesOf('b', 'y'));

    await settleWithTimers(cache.flush());
    expect(cache.stats()).toMatchObject({
      pending: 0,
      pendingBytes: 0,
      entries: 2,
      bytes: bytesOf('a', 'z') + bytesOf('b', 'y'),
      evictions: 0,
    });
    // Rewriting a clean key takes it out of the LRU: not an eviction.
    await cache.set('a', 'again');
    expect(cache.stats()).toMatchObject({ entries: 1, evictions: 0 });
    await settleWithTimers(cache.flush());
    await cache.set('c', 'c');
    await settleWithTimers(cache.flush());
    expect(cache.stats()).toMatchObject({ entries: 2, evictions: 1 });
  });

  it('flushes what was written even when the caller mutated a value it read before the flush', async () => {
    const { cache, storage } = await memoryCache();
    await cache.set('k', { n: 1 });
    const read = (await cache.get('k')) as { n: number };
    read.n = 2;
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'k')).toEqual({ n: 1 });
  });

  it('replayed writes keep the age of their original queueing', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    first.storage.goDown();
    await first.cache.set('a', 1);
    vi.advanceTimersByTime(1_000);
    await first.cache.set('b', 2);
    await settleWithTimers(first.cache.close({ timeoutMs: 10 }));
    vi.advanceTimersByTime(5_000);
    const second = await memoryCache({ outbox: { path, durability: 'process' }, storage: first.storage });
    expect(second.cache.stats()).toMatchObject({ pending: 2 });
    expect(second.cache.stats().oldestPendingAgeMs).toBeGreaterThanOrEqual(6_000);
    await settleWithTimers(second.cache.close({ timeoutMs: 10 }));
  });
});

describe('backpressure', () => {
  const limits = { maxPendingBytes: 1_000, maxValueBytes: 400 };
  /** A string whose entry under `key` counts exactly `bytes` against the backlog. */
  const sized = (key: string, bytes: number, fill = 'x') => fill.repeat(bytes - bytesOf(key, ''));

  it('accepts a write that brings the backlog exactly to maxPendingBytes, and refuses one more', async () => {
    const { cache, storage } = await memoryCache(limits);
    storage.goDown();
    await cache.set('a', sized('a', 400));
    await cache.set('b', sized('b', 400));
    await cache.set('c', sized('c', 200));
    expect(cache.stats().pendingBytes).toBe(1_000);
    await expect(cache.set('d', 1)).rejects.toBeInstanceOf(BackpressureError);
    // Same size again: not refused.
    await cache.set('a', sized('a', 400, 'y'));
    expect(await cache.get('a')).toBe(sized('a', 400, 'y'));
  });

  it('states the backlog size and the limit in the error', async () => {
    const { cache, storage } = await memoryCache(limits);
    storage.goDown();
    await cache.set('a', sized('a', 400));
    await cache.set('b', sized('b', 400));
    await cache.set('c', sized('c', 190));
    const error = await cache.set('d', sized('d', 100)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackpressureError);
    const bp = error as BackpressureError;
    expect(bp.pendingBytes).toBe(990);
    expect(bp.maxPendingBytes).toBe(1_000);
    expect(bp.message).toMatch(/\b990\b/);
    expect(bp.message).toMatch(/\b1000\b/);
  });

  it('never refuses an overwrite that does not grow a value, even over the limit', async () => {
    const { cache, storage } = await memoryCache(limits);
    // A dead letter re-queued on top of a full backlog puts it over the limit.
    storage.rejectKey('p');
    await cache.set('p', 'p'.repeat(300));
    await settleWithTimers(cache.flush());
    expect(cache.deadLetters()).toHaveLength(1);
    storage.goDown();
    await cache.set('a', 'a'.repeat(300));
    await cache.set('b', 'b'.repeat(300));
    expect(cache.retryDeadLetters()).toBe(1);
    expect(cache.stats().pendingBytes).toBeGreaterThan(1_000);

    await expect(cache.set('c', 1)).rejects.toBeInstanceOf(BackpressureError);
    await cache.set('a', 'A'.repeat(300)); // same size
    await cache.set('b', 'B'); // smaller
    expect(await cache.get('a')).toBe('A'.repeat(300));
    expect(await cache.get('b')).toBe('B');
  });

  it('counts writes still being recorded in the outbox, and only until they are recorded', async () => {
    const { cache, storage } = await memoryCache({
      ...limits,
      outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    });
    storage.goDown();
    // Neither is committed to the outbox yet when the third arrives.
    const recording = [cache.set('a', sized('a', 400)), cache.set('b', sized('b', 400))];
    const error = await cache.set('c', sized('c', 400)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackpressureError);
    expect((error as BackpressureError).pendingBytes).toBe(800);
    expect((error as BackpressureError).message).toMatch(/(?<![-\d])800(?!\d)/);
    await Promise.all(recording);
    expect(cache.stats().pendingBytes).toBe(800);
    // Recorded writes count once, as pending: room remains for another 200 bytes.
    await cache.set('c', sized('c', 200));
    expect(cache.stats().pendingBytes).toBe(1_000);
    await settleWithTimers(cache.close({ timeoutMs: 10 }));
  });
});

describe('close', () => {
  it('includes writes still being recorded in the outbox in its drain', async () => {
    const { cache, storage } = await memoryCache({
      outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    });
    const first = cache.set('a', 1);
    const second = cache.set('b', 2);
    const result = await settleWithTimers(cache.close());
    await Promise.all([first, second]);
    expect(result).toEqual({ pending: 0, drained: true });
    expect(storedValue(storage, 'a')).toBe(1);
    expect(storedValue(storage, 'b')).toBe(2);
  });

  it('finishes once the one write it waited for is recorded', async () => {
    const { cache, storage } = await memoryCache({
      outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    });
    const write = cache.set('a', 1);
    let result: unknown;
    const closing = cache.close().then((r) => {
      result = r;
    });
    await write;
    for (let step = 0; step < 100 && result === undefined; step++) await vi.advanceTimersByTimeAsync(100);
    expect(result).toEqual({ pending: 0, drained: true });
    await closing;
    expect(storedValue(storage, 'a')).toBe(1);
  });

  it('warns with the pending count when writes without an outbox are lost', async () => {
    const { logger, lines } = capturingLogger();
    const { cache, storage } = await memoryCache({ logger });
    storage.goDown();
    await cache.set('a', 1);
    await cache.set('b', 2);
    const result = await settleWithTimers(cache.close({ timeoutMs: 100 }));
    expect(result).toEqual({ pending: 2, drained: false });
    const warning = lines.find((l) => 'durable' in l);
    expect(warning).toMatchObject({ level: 40, pending: 2, durable: false });
    expect(warning?.msg).toMatch(/lost/);
  });

  it('warns that unflushed writes stay in a durable outbox', async () => {
    const { logger, lines } = capturingLogger();
    const { cache, storage } = await memoryCache({
      logger,
      outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    });
    storage.goDown();
    await cache.set('a', 1);
    await settleWithTimers(cache.close({ timeoutMs: 100 }));
    const warning = lines.find((l) => 'durable' in l);
    expect(warning).toMatchObject({ level: 40, pending: 1, durable: true });
    expect(warning?.msg).toMatch(/outbox/);
  });

  it('logs no warning when everything was flushed, and leaves no timer running', async () => {
    const { logger, at } = capturingLogger();
    const { cache } = await memoryCache({ logger });
    await cache.set('a', 1);
    expect(await settleWithTimers(cache.close({ timeoutMs: 60_000 }))).toEqual({ pending: 0, drained: true });
    expect(at('warn')).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('is not open from the moment close() is called; a second close() and a flush reject', async () => {
    const { cache } = await memoryCache();
    expect(cache.isOpen).toBe(true);
    const closing = cache.close();
    expect(cache.isOpen).toBe(false);
    await settleWithTimers(closing);
    expect(cache.isOpen).toBe(false);
    const again = await cache.close().catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ClosedError);
    expect((again as ClosedError).message).toMatch(/close/);
    await expect(cache.flush()).rejects.toBeInstanceOf(ClosedError);
  });
});

describe('outbox failures', () => {
  it('exposes the last outbox failure until a write succeeds', async () => {
    const { cache, storage } = await memoryCache({
      outbox: { path: join(dir, 'outbox.db'), durability: 'process', maxFileBytes: 64 * 1024 },
      maxValueBytes: 200_000,
    });
    storage.goDown();
    expect(cache.outboxError).toBeUndefined();
    await expect(cache.set('big', 'x'.repeat(150_000))).rejects.toBeInstanceOf(OutboxError);
    expect(cache.outboxError).toBeInstanceOf(OutboxError);
    await cache.set('small', 1);
    expect(cache.outboxError).toBeUndefined();
    await settleWithTimers(cache.close({ timeoutMs: 10 }));
  });
});

describe('health', () => {
  it('emits and logs each change: a warning with the error when unhealthy, info when healthy again', async () => {
    const { logger, lines } = capturingLogger();
    const { cache, storage } = await memoryCache({ logger });
    const events: unknown[] = [];
    const removed: unknown[] = [];
    const keep = (e: unknown) => events.push(e);
    const drop = (e: unknown) => removed.push(e);
    expect(cache.on('health', keep).on('health', drop).off('health', drop)).toBe(cache);
    expect(cache.health).toBe('healthy');

    storage.failNext(1);
    await expect(settleWithTimers(cache.get('x'))).rejects.toBeInstanceOf(StorageUnavailableError);
    expect(cache.health).toBe('degraded');
    await settleWithTimers(cache.get('y'));
    expect(cache.health).toBe('healthy');

    expect(removed).toEqual([]);
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ from: 'healthy', to: 'degraded' });
    expect((events[0] as { error: Error }).error.message).toMatch(/injected/);
    expect(events[1]).toStrictEqual({ from: 'degraded', to: 'healthy' });

    const logged = lines.filter((l) => 'from' in l);
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({ level: 40, from: 'healthy', to: 'degraded', pending: 0 });
    expect(logged[0]?.msg).toMatch(/degraded/);
    expect(logged[0]?.err).toBeDefined();
    expect(logged[1]).toMatchObject({ level: 30, from: 'degraded', to: 'healthy', pending: 0 });
    expect(logged[1]?.msg).toMatch(/healthy/);
  });
});

describe('read-through', () => {
  it('batches concurrent misses into store reads of at most batchSize keys', async () => {
    const storage = new HeldReads();
    const cache = await cacheOver(storage, { flush: { batchSize: 3, intervalMs: 10, concurrency: 2 } });
    await storage.inner.apply([{ key: 'k4', version: 1, json: '4', expiresAt: null }]);
    const keys = Array.from({ length: 7 }, (_, i) => `k${i}`);
    const values = await Promise.all(keys.map((k) => cache.get(k)));
    expect(values).toEqual([undefined, undefined, undefined, undefined, 4, undefined, undefined]);
    expect(storage.reads.map((r) => r.length)).toEqual([3, 3, 1]);
    expect(storage.reads.flat().sort()).toEqual([...keys].sort());
    expect(cache.stats().loads).toBe(7);

    storage.reads.length = 0;
    await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((k) => cache.get(k)));
    expect(storage.reads.map((r) => r.length)).toEqual([3, 3]);
  });

  it('aborts the store read it started when the read times out', async () => {
    const storage = new HeldReads();
    const cache = await cacheOver(storage);
    storage.hold();
    const read = cache.get('k');
    await expect(settleWithTimers(read)).rejects.toBeInstanceOf(StorageUnavailableError);
    expect(storage.signals).toHaveLength(1);
    expect(storage.signals[0]?.aborted).toBe(true);
  });

  it('discards a store answer older than a local write that landed during the read', async () => {
    const storage = new HeldReads('before');
    const cache = await cacheOver(storage, { maxEntries: 1 });
    await storage.inner.apply([{ key: 'k', version: 1, json: '"old"', expiresAt: null }]);
    const release = storage.hold();
    const read = cache.get('k'); // the store answers 'old'
    await vi.advanceTimersByTimeAsync(0);
    await cache.set('k', 'mine');
    await settleWithTimers(cache.flush());
    await cache.set('other', 1); // flushed and cached, it evicts 'k' from memory
    await settleWithTimers(cache.flush());
    release();
    expect(await read).toBe('mine');
  });

  it('uses a store answer newer than a local write that landed during the read', async () => {
    const storage = new HeldReads('after');
    const cache = await cacheOver(storage);
    const release = storage.hold();
    const read = cache.get('k');
    await vi.advanceTimersByTimeAsync(0);
    await cache.set('k', 'mine');
    await settleWithTimers(cache.flush());
    await storage.inner.apply([{ key: 'k', version: newerVersion(), json: '"theirs"', expiresAt: null }]);
    release();
    expect(await read).toBe('theirs');
    expect(await cache.get('k')).toBe('theirs');
  });

  it('uses a store answer that is the local write itself, without reading again', async () => {
    const storage = new HeldReads('after');
    const cache = await cacheOver(storage, { maxEntries: 1 });
    const release = storage.hold();
    const read = cache.get('k');
    await vi.advanceTimersByTimeAsync(0);
    await cache.set('k', 'mine');
    await settleWithTimers(cache.flush());
    await cache.set('other', 1); // evicts 'k' from memory once flushed
    await settleWithTimers(cache.flush());
    release();
    expect(await read).toBe('mine');
    expect(storage.reads).toEqual([['k']]);
    expect(cache.stats()).toMatchObject({ misses: 1, loads: 1 });
  });

  it('answers with the unflushed local write when the store returns a newer one during the read', async () => {
    const storage = new HeldReads('after');
    const cache = await cacheOver(storage);
    const release = storage.hold();
    const read = cache.get('k');
    await vi.advanceTimersByTimeAsync(0);
    await cache.set('k', 'mine'); // not flushed: no timers advance
    await storage.inner.apply([{ key: 'k', version: newerVersion(), json: '"theirs"', expiresAt: null }]);
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(await read).toBe('mine');
    expect(await cache.get('k')).toBe('mine');
  });

  it('a write with no read in flight does not make a later read of the key go to the store twice', async () => {
    const { cache, storage } = await memoryCache();
    storage.rejectKey('k');
    await cache.set('k', 1);
    await settleWithTimers(cache.flush());
    expect(cache.deadLetters()).toHaveLength(1);
    expect(await cache.get('k')).toBeUndefined();
    expect(storage.calls.getMany).toBe(1);
    expect(cache.stats()).toMatchObject({ misses: 1, loads: 1 });
  });

  it('serves a stored value too large for the LRU straight from the store answer', async () => {
    const { cache, storage } = await memoryCache({ maxValueBytes: 1_000, maxBytes: 2_000 });
    const big = 'x'.repeat(5_000);
    await storage.apply([
      { key: 'big', version: newerVersion(), json: JSON.stringify(big), expiresAt: null },
      { key: 'ttl', version: newerVersion(), json: JSON.stringify(big), expiresAt: Date.now() + 60_000 },
    ]);
    expect(await cache.get('big')).toBe(big);
    expect(await cache.get('ttl')).toBe(big);
    expect(cache.stats().entries).toBe(0);
  });

  it('treats an entry the store returns already expired by the local clock as absent', async () => {
    const storage = new HeldReads();
    const cache = await cacheOver(storage);
    // A store whose clock runs behind: it still returns an entry that has expired here.
    storage.getMany = async (keys) =>
      new Map(keys.map((key) => [key, { version: 1, json: '"stale"', expiresAt: Date.now() }]));
    expect(await cache.get('k')).toBeUndefined();
  });
});

describe('read failures', () => {
  const failingStore = (reason: unknown): Storage => ({
    getMany: () => Promise.reject(reason),
    apply: async (writes) => writes.map(() => ({ status: 'applied' as const })),
    highWaterMark: async () => 0,
  });

  it('carries the store error message and cause', async () => {
    const cause = new Error('connection refused by db-7');
    const cache = await cacheOver(failingStore(cause));
    const error = await settleWithTimers(cache.get('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect((error as Error).message).toMatch(/connection refused by db-7/);
    expect((error as Error).cause).toBe(cause);
  });

  it('describes a store that rejects with something other than an Error', async () => {
    const cache = await cacheOver(failingStore('socket hang up'));
    const error = await settleWithTimers(cache.get('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect((error as Error).message).toMatch(/socket hang up/);
  });

  it('rejects even when the store rejects with no reason at all', async () => {
    const cache = await cacheOver(failingStore(undefined));
    const error = await settleWithTimers(cache.get('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
  });
});
