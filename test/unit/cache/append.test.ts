import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { ABANDON, type HybridCache } from '../../../src/cache/hybrid-cache.js';
import {
  BackpressureError,
  createHybridCache,
  MemoryStorage,
  type Storage,
  type VersionedWrite,
} from '../../../src/index.js';
import { FaultyStorage } from '../../../src/testing/index.js';
import { memoryCache, silentLogger } from '../../helpers/cache.js';

/** Records every write the cache sends, to check what an append costs on the wire. */
class RecordingStorage extends FaultyStorage<MemoryStorage> {
  readonly sent: VersionedWrite[] = [];
  constructor() {
    super(new MemoryStorage());
  }
  override async apply(writes: VersionedWrite[], opts?: { signal?: AbortSignal }) {
    this.sent.push(...writes.map((w) => structuredClone(w)));
    return super.apply(writes, opts);
  }
}

/** Answers each read with what the store held when the read arrived, once the test lets it go. */
class StaleReadStorage extends FaultyStorage<MemoryStorage> {
  #gate: Promise<void> | undefined;
  #release: () => void = () => {};
  constructor() {
    super(new MemoryStorage());
  }
  holdReads(): void {
    this.#gate = new Promise((resolve) => (this.#release = resolve));
  }
  releaseReads(): void {
    this.#gate = undefined;
    this.#release();
  }
  #arrived: () => void = () => {};
  /** Resolves once the next read has taken its snapshot. */
  readArrived(): Promise<void> {
    return new Promise((resolve) => (this.#arrived = resolve));
  }
  override async getMany(keys: string[], opts?: { signal?: AbortSignal }) {
    const snapshot = await super.getMany(keys, opts);
    this.#arrived();
    await this.#gate;
    return snapshot;
  }
}

/** Holds every write until the test lets them go; reads go through. */
class HeldWritesStorage extends FaultyStorage<MemoryStorage> {
  #gate: Promise<void> | undefined;
  #release: () => void = () => {};
  constructor() {
    super(new MemoryStorage());
  }
  holdWrites(): void {
    this.#gate = new Promise((resolve) => (this.#release = resolve));
  }
  releaseWrites(): void {
    this.#gate = undefined;
    this.#release();
  }
  override async apply(writes: VersionedWrite[], opts?: { signal?: AbortSignal }) {
    await this.#gate;
    return super.apply(writes, opts);
  }
  #markGate: Promise<void> | undefined;
  #releaseMark: () => void = () => {};
  /** The version high-water mark is not answered until `releaseMark`: writes meanwhile are unanchored. */
  holdMark(): void {
    this.#markGate = new Promise((resolve) => (this.#releaseMark = resolve));
  }
  releaseMark(): void {
    this.#markGate = undefined;
    this.#releaseMark();
  }
  override async highWaterMark(opts?: { signal?: AbortSignal }) {
    await this.#markGate;
    return super.highWaterMark(opts);
  }
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'append-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function durableCache(storage: Storage, name = 'outbox.db') {
  return createHybridCache({
    storage,
    outbox: { path: join(dir, name), durability: 'process' },
    flush: { batchSize: 50, intervalMs: 5, concurrency: 2 },
    logger: silentLogger,
  });
}

describe('append', () => {
  it('shows unflushed items with the value at once, then sends each item once, never the whole log', async () => {
    const storage = new RecordingStorage();
    const cache = await durableCache(storage);
    await cache.set('log', { header: 1 });
    for (let i = 0; i < 20; i++) await cache.append('log', { n: i, text: 'x'.repeat(100) });
    expect(await cache.getWithItems('log')).toEqual({
      value: { header: 1 },
      items: Array.from({ length: 20 }, (_, n) => ({ n, text: 'x'.repeat(100) })),
    });
    await cache.flush();
    const itemsSent = storage.sent.flatMap((w) => w.items ?? []);
    expect(itemsSent.map((i) => JSON.parse(i.json).n)).toEqual(Array.from({ length: 20 }, (_, n) => n));
    expect(storage.inner.peekItems('log')).toHaveLength(20);
    for (let i = 20; i < 25; i++) await cache.append('log', { n: i });
    await cache.flush();
    // Later appends send only themselves.
    expect(storage.sent.flatMap((w) => w.items ?? [])).toHaveLength(25);
    expect((await cache.getWithItems('log'))?.items).toHaveLength(25);
    await cache.close();
  });

  it('reads stored items merged with local unflushed ones after the log left memory', async () => {
    const storage = new RecordingStorage();
    const writer = await durableCache(storage, 'a.db');
    await writer.set('k', 'v');
    await writer.append('k', 'stored-1');
    await writer.flush();
    await writer.close();
    const { cache } = await memoryCache({ storage });
    storage.goDown();
    await cache.append('k', 'local-2');
    await expect(cache.getWithItems('k')).rejects.toThrow(/unreachable|could not be read/);
    storage.comeUp();
    expect(await cache.getWithItems('k')).toEqual({ value: 'v', items: ['stored-1', 'local-2'] });
    await cache.close();
  });

  it('does not lose items the store took while a read of the key was in flight (value already flushed)', async () => {
    const storage = new StaleReadStorage();
    const { cache } = await memoryCache({ storage });
    await cache.set('log', 'header');
    await cache.flush();
    await cache.append('log', 'first');
    storage.holdReads();
    // The value is in memory but its stored log is not: the read goes to the store, which answers
    // from before the item was flushed.
    const read = cache.getWithItems('log');
    await storage.readArrived();
    await cache.flush();
    storage.releaseReads();
    expect(await read).toEqual({ value: 'header', items: ['first'] });
    expect(await cache.getWithItems('log')).toEqual({ value: 'header', items: ['first'] });
    await cache.close();
  });

  it('keeps each stored item once (its parsed value), counted as much as an item never read', async () => {
    const build = async (readBeforeFlush: boolean) => {
      const { cache } = await memoryCache();
      await cache.set('log', 'first');
      await cache.flush();
      await cache.getWithItems('log'); // memory now knows the key's stored log
      for (let i = 0; i < 5; i++) await cache.append('log', { n: i, text: 'y'.repeat(200) });
      if (readBeforeFlush) await cache.getWithItems('log');
      await cache.flush();
      // A new value keeps the log; memory counts the entry again, log included.
      await cache.set('log', 'header');
      await cache.flush();
      return cache;
    };
    const read = await build(true);
    const unread = await build(false);
    const expected = { value: 'header', items: [0, 1, 2, 3, 4].map((n) => ({ n, text: 'y'.repeat(200) })) };
    expect(await read.getWithItems('log')).toEqual(expected);
    expect(await unread.getWithItems('log')).toEqual(expected);
    expect(read.stats().bytes).toBe(unread.stats().bytes);
    expect(read.stats().bytes).toBeGreaterThan(5 * 200);
    await read.close();
    await unread.close();
  });

  it('after a crash, a value written over a delete still hides the items the delete ended, before it is flushed', async () => {
    const storage = new HeldWritesStorage();
    let cache = await durableCache(storage);
    await cache.set('k', 'v');
    await cache.append('k', 'old');
    await cache.flush();
    storage.holdWrites();
    await cache.delete('k');
    await cache.set('k', 'new');
    await cache[ABANDON]();
    cache = await durableCache(storage);
    // Memory knows the value but not the key's stored log, which still holds the item.
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: [] });
    storage.releaseWrites();
    await cache.flush();
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: [] });
    expect(storage.inner.peekItems('k')).toEqual([]);
    await cache.close();
  });

  it('a crash after the anchor keeps the versions it gave: writes from before it stay before the writes after it', async () => {
    const storage = new HeldWritesStorage();
    // The store holds versions an hour ahead of this process's clock.
    const ahead = (Date.now() + 3_600_000) * 1024;
    await storage.inner.apply([{ key: 'elsewhere', version: ahead, json: '1', expiresAt: null }]);
    storage.holdMark();
    // Nothing is sent before the crash: the first flush would come after a minute.
    let cache = await createHybridCache({
      storage,
      outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
      flush: { batchSize: 50, intervalMs: 60_000, concurrency: 2 },
      logger: silentLogger,
    });
    // Accepted before the mark is known: the delete, the value over it, and an item.
    await cache.delete('k');
    await cache.set('k', 'v');
    await cache.append('log', 'before');
    storage.releaseMark();
    await vi.waitFor(() => expect(cache.stats().clockAnchored).toBe(true));
    // Accepted after: these must stay after the ones above, in order and not ended by the delete.
    await cache.append('k', 'after-set');
    await cache.append('log', 'after');
    await cache[ABANDON]();
    cache = await durableCache(storage);
    await cache.flush();
    expect(await cache.getWithItems('k')).toEqual({ value: 'v', items: ['after-set'] });
    expect(await cache.getWithItems('log')).toBeUndefined(); // never set: its items stay invisible
    expect(storage.inner.peekItems('log').map((i) => JSON.parse(i.json))).toEqual(['before', 'after']);
    expect(storage.inner.peekItems('k').map((i) => JSON.parse(i.json))).toEqual(['after-set']);
    await cache.close();
  });

  it('after a crash before the anchor, a value written over a delete hides every item stored before it', async () => {
    const storage = new HeldWritesStorage();
    const ahead = (Date.now() + 3_600_000) * 1024;
    await storage.inner.apply([
      { key: 'k', version: ahead, json: '"old"', expiresAt: null },
      {
        key: 'k',
        version: ahead + 1,
        json: null,
        expiresAt: null,
        appendedAt: 0,
        items: [{ id: 'x', version: ahead + 1, json: '"stored"' }],
      },
    ]);
    storage.holdMark();
    storage.holdWrites();
    let cache = await durableCache(storage);
    await cache.delete('k');
    await cache.set('k', 'new');
    await cache[ABANDON]();
    cache = await durableCache(storage);
    // Not anchored yet: the delete will be sent above everything the store holds, item included.
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: [] });
    storage.releaseMark();
    storage.releaseWrites();
    await cache.flush();
    expect(storage.inner.peekItems('k')).toEqual([]);
    expect(await cache.getWithItems('k')).toEqual({ value: 'new', items: [] });
    await cache.close();
  });

  it('replays appended items from the outbox after a crash, and the store holds each exactly once', async () => {
    const storage = new RecordingStorage();
    const first = await durableCache(storage);
    await first.set('thread', 'h');
    await first.flush();
    storage.goDown();
    for (let i = 0; i < 5; i++) await first.append('thread', i);
    await first[ABANDON]();
    storage.comeUp();
    const second = await durableCache(storage);
    expect(await second.getWithItems('thread')).toEqual({ value: 'h', items: [0, 1, 2, 3, 4] });
    await second.flush();
    expect(storage.inner.peekItems('thread').map((i) => JSON.parse(i.json))).toEqual([0, 1, 2, 3, 4]);
    await second.close();
  });

  it('never duplicates an item whose batch committed but whose answer was lost', async () => {
    const storage = new RecordingStorage();
    const { cache } = await memoryCache({ storage, retry: { baseMs: 1, maxMs: 5 } });
    await cache.set('k', 'v');
    await cache.flush();
    storage.commitThenFailNext(1);
    await cache.append('k', 'once');
    await cache.flush();
    expect(storage.sent.flatMap((w) => w.items ?? []).length).toBeGreaterThan(1);
    expect(storage.inner.peekItems('k').map((i) => JSON.parse(i.json))).toEqual(['once']);
    await cache.close();
  });

  it('deletes a key’s items with it, in memory and the store, and a late append does not revive them', async () => {
    const storage = new RecordingStorage();
    const cache = await durableCache(storage);
    await cache.set('k', 'v');
    await cache.append('k', 'a');
    await cache.flush();
    await cache.append('k', 'unflushed');
    await cache.delete('k');
    expect(await cache.getWithItems('k')).toBeUndefined();
    await cache.flush();
    expect(storage.inner.peekItems('k')).toEqual([]);
    await cache.set('k', 'again');
    expect(await cache.getWithItems('k')).toEqual({ value: 'again', items: [] });
    await cache.close();
  });

  it('takes the items with an expired key', async () => {
    const { cache } = await memoryCache();
    await cache.set('k', 'v', { ttlMs: 1 });
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 5 }); // the TTL lapses
    onTestFinished(() => {
      vi.useRealTimers();
    });
    await cache.append('k', 'i', { ttlMs: 60_000 });
    expect(await cache.getWithItems('k')).toBeUndefined();
    await cache.close();
  });

  it('refreshes the key’s TTL on append without rewriting its value', async () => {
    const storage = new RecordingStorage();
    const { cache } = await memoryCache({ storage });
    await cache.set('k', 'v', { ttlMs: 1_000 });
    await cache.flush();
    const before = storage.inner.peek('k')?.expiresAt ?? 0;
    await cache.append('k', 'i', { ttlMs: 3_600_000 });
    await cache.flush();
    expect(storage.inner.peek('k')?.expiresAt).toBeGreaterThan(before + 3_000_000);
    expect(storage.sent.filter((w) => w.key === 'k' && w.items === undefined)).toHaveLength(1);
    await cache.close();
  });

  it('rejects an append past maxPendingBytes with BackpressureError and keeps the rest', async () => {
    const { cache, storage } = await memoryCache({ maxPendingBytes: 2_000, maxValueBytes: 500 });
    storage.goDown();
    await cache.set('k', 'v', { newKey: true });
    await expect(async () => {
      for (let i = 0; i < 100; i++) await cache.append('k', 'y'.repeat(100));
    }).rejects.toBeInstanceOf(BackpressureError);
    const held = (await cache.getWithItems('k'))?.items.length ?? 0;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(100);
    await cache.close({ timeoutMs: 10 });
  });

  it('drops an appended item a newer delete from elsewhere refused, and counts it as superseded', async () => {
    const { cache, storage } = await memoryCache();
    await cache.set('k', 'v');
    await cache.flush();
    await cache.getWithItems('k');
    // Another process deleted the key, with a version far above this process's clock.
    await storage.inner.apply([
      { key: 'k', version: Number.MAX_SAFE_INTEGER - 10, json: null, expiresAt: null },
    ]);
    await cache.append('k', 'late');
    await cache.flush();
    expect(storage.inner.peekItems('k')).toEqual([]);
    expect(cache.stats()).toMatchObject({ superseded: 1, pending: 0, deadLetters: 0 });
    expect(cache.deadLetters()).toEqual([]);
    await cache.close();
  });

  it('dead-letters a rejected append item by item, and they can be retried', async () => {
    const { cache, storage } = await memoryCache();
    await cache.set('poison', 'v');
    await cache.flush();
    storage.rejectKey('poison');
    await cache.append('poison', 1);
    await cache.append('poison', 2);
    await cache.flush();
    const letters = cache.deadLetters();
    expect(cache.stats().deadLetters).toBe(2);
    expect(letters.map((l) => [l.itemId !== undefined, l.json])).toEqual([
      [true, '1'],
      [true, '2'],
    ]);
    storage.acceptKey('poison');
    expect(cache.retryDeadLetters()).toBe(2);
    await cache.flush();
    expect(storage.inner.peekItems('poison').map((i) => JSON.parse(i.json))).toEqual([1, 2]);
    await cache.close();
  });

  it('keeps every item of three instances appending to one key concurrently, once each, in one order for all', async () => {
    const storage = new MemoryStorage();
    const caches: HybridCache[] = [];
    for (let i = 0; i < 3; i++) caches.push((await memoryCache({ storage })).cache as HybridCache);
    await caches[0]?.set('shared', 'header');
    await caches[0]?.flush();
    await Promise.all(
      caches.map(async (cache, c) => {
        for (let i = 0; i < 30; i++) await cache.append('shared', `${c}-${i}`);
      }),
    );
    await Promise.all(caches.map((cache) => cache.flush()));
    const fresh = (await memoryCache({ storage })).cache;
    const orders = await Promise.all(
      [...caches, fresh].map(async (cache) => (await cache.getWithItems('shared'))?.items),
    );
    const stored = storage.peekItems('shared').map((i) => JSON.parse(i.json));
    expect(stored).toHaveLength(90);
    expect(new Set(stored).size).toBe(90);
    for (const order of orders) expect(order).toEqual(stored);
    for (let c = 0; c < 3; c++) {
      const mine = stored.filter((s: string) => s.startsWith(`${c}-`));
      expect(mine).toEqual(Array.from({ length: 30 }, (_, i) => `${c}-${i}`));
    }
    await Promise.all([...caches, fresh].map((cache) => cache.close()));
  });
});
