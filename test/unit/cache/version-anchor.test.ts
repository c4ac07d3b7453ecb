import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { ABANDON } from '../../../src/cache/hybrid-cache.js';
import {
  createHybridCache,
  type HybridCacheOptions,
  LOGICAL_SLOTS,
  MemoryStorage,
  type Storage,
  type SupersededWrite,
} from '../../../src/index.js';
import { FaultyStorage } from '../../../src/testing/index.js';
import { capturingLogger, faultyMemory, memoryCache, silentLogger } from '../../helpers/cache.js';

const HOUR_MS = 3_600_000;
/** A version minted by a host whose clock is an hour ahead of this one. */
const aheadVersion = () => (Date.now() + HOUR_MS) * LOGICAL_SLOTS;

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function outboxPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hc-anchor-'));
  dirs.push(dir);
  return join(dir, 'outbox.db');
}

function durableCache(storage: Storage, path: string, overrides: Partial<HybridCacheOptions> = {}) {
  return createHybridCache<unknown>({
    storage,
    outbox: { path, durability: 'process' },
    flush: { batchSize: 50, intervalMs: 5, concurrency: 2 },
    retry: { baseMs: 5, maxMs: 20 },
    breaker: { failureThreshold: 1_000, halfOpenAfterMs: 10 },
    logger: silentLogger,
    ...overrides,
  });
}

async function storeHolding(entries: Record<string, string>): Promise<FaultyStorage<MemoryStorage>> {
  const storage = faultyMemory();
  await storage.apply(
    Object.entries(entries).map(([key, value]) => ({
      key,
      version: aheadVersion(),
      json: JSON.stringify(value),
      expiresAt: null,
    })),
  );
  return storage;
}

/** Resolves once the cache's clock has read the store's mark: the flusher reads it before it sends anything. */
async function anchored(cache: { set(key: string, value: never): Promise<void>; flush(): Promise<void> }) {
  await cache.set(`anchor-probe:${randomUUID()}`, 0 as never);
  await cache.flush();
}

const storedJson = (storage: FaultyStorage<MemoryStorage>, key: string) => {
  const entry = storage.inner.peek(key);
  return entry && (entry.json === null ? null : JSON.parse(entry.json));
};

describe('a cache whose clock is behind the versions the store holds', () => {
  it('keeps its blind set and delete after the flush (durability none)', async () => {
    const storage = await storeHolding({ k: 'old', gone: 'old' });
    const { cache } = await memoryCache({ storage });
    await cache.set('k', 'new');
    await cache.delete('gone');
    await cache.flush();
    expect(await cache.get('k')).toBe('new');
    expect(await cache.get('gone')).toBeUndefined();
    expect(storedJson(storage, 'k')).toBe('new');
    expect(storedJson(storage, 'gone')).toBeNull();
    expect(cache.stats().superseded).toBe(0);
    // A fresh reader sees the same.
    const { cache: reader } = await memoryCache({ storage });
    expect(await reader.get('k')).toBe('new');
    expect(await reader.get('gone')).toBeUndefined();
  });

  it('mints above the high-water mark it read when it opened, tombstones included', async () => {
    const storage = faultyMemory();
    const mark = aheadVersion();
    await storage.apply([{ key: 'tombstone', version: mark, json: null, expiresAt: null }]);
    const { cache } = await memoryCache({ storage });
    await vi.waitFor(() => expect(storage.calls.highWaterMark).toBe(1));
    await cache.set('fresh', 1);
    await cache.flush();
    expect(storage.inner.peek('fresh')?.version).toBeGreaterThan(mark);
  });
});

describe('the store down or slow when the cache opens', () => {
  it('opens, accepts writes, and keeps them once the store is back', async () => {
    const storage = await storeHolding({ k: 'old', gone: 'old' });
    storage.goDown();
    const cache = await durableCache(storage, outboxPath());
    await cache.set('k', 'new');
    await cache.delete('gone');
    expect(await cache.get('k')).toBe('new');
    await new Promise<void>((resolve) => cache.on('retry', () => resolve())); // a flush attempt failed
    expect(cache.stats().pending).toBe(2);
    storage.comeUp();
    await cache.flush({ timeoutMs: 10_000 });
    expect(storedJson(storage, 'k')).toBe('new');
    expect(storedJson(storage, 'gone')).toBeNull();
    expect(await cache.get('k')).toBe('new');
    expect(cache.stats().superseded).toBe(0);
    await cache.close();
  });

  it('does not make open wait for a slow store', async () => {
    const storage = await storeHolding({ k: 'old' });
    storage.setLatency(60_000);
    const { cache } = await memoryCache({ storage, readTimeoutMs: 120_000 });
    await cache.set('k', 'new');
    expect(await cache.get('k')).toBe('new');
    expect(cache.stats().pending).toBe(1);
    storage.setLatency(0);
    await cache[ABANDON]();
  });

  it('keeps writes accepted before the store was ever reached across a crash and a restart', async () => {
    const storage = await storeHolding({ k: 'old', gone: 'old' });
    storage.goDown();
    const path = outboxPath();
    const first = await durableCache(storage, path);
    await first.set('k', 'new');
    await first.delete('gone');
    await first[ABANDON]();

    storage.comeUp();
    const second = await durableCache(storage, path);
    expect(second.stats().pending).toBe(2);
    await second.flush({ timeoutMs: 10_000 });
    expect(storedJson(storage, 'k')).toBe('new');
    expect(storedJson(storage, 'gone')).toBeNull();
    expect(second.stats().superseded).toBe(0);
    await second.close();
  });

  it('keeps the order of writes to one key that land while the high-water mark is being read', async () => {
    const storage = await storeHolding({ k: 'old' });
    storage.setLatency(15);
    const cache = await durableCache(storage, outboxPath());
    let last = 0;
    // Bursts of concurrent writes (one outbox group commit each) across the moment the mark arrives.
    for (let burst = 0; burst < 40; burst++) {
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < 3; i++) writes.push(cache.set('k', ++last));
      await Promise.all(writes);
      await new Promise((resolve) => setImmediate(resolve));
    }
    storage.setLatency(0);
    await cache.flush({ timeoutMs: 10_000 });
    expect(await cache.get('k')).toBe(last);
    expect(storedJson(storage, 'k')).toBe(last);
    expect(cache.stats().superseded).toBe(0);
    await cache.close();
  });
});

/** A MemoryStorage whose high-water mark answers only when the test lets it. */
class HeldMark extends MemoryStorage {
  #open = () => {};
  readonly #gate = new Promise<void>((resolve) => {
    this.#open = resolve;
  });
  #wasAsked = () => {};
  /** Resolves once a cache has asked for the mark (and is waiting for it). */
  readonly asked = new Promise<void>((resolve) => {
    this.#wasAsked = resolve;
  });
  release(): void {
    this.#open();
  }
  override async highWaterMark(opts?: { signal?: AbortSignal }): Promise<number> {
    this.#wasAsked();
    await this.#gate;
    return super.highWaterMark(opts);
  }
}

describe('writes to one key in flight when the high-water mark arrives', () => {
  it('keeps the newer write when an older one to the same key is re-minted first', async () => {
    const storage = new FaultyStorage(new HeldMark());
    await storage.apply([{ key: 'k', version: aheadVersion(), json: '"old"', expiresAt: null }]);
    const cache = await durableCache(storage, outboxPath(), {
      flush: { batchSize: 50, intervalMs: 0, concurrency: 2 },
    });
    await cache.set('k', 'a');
    await storage.inner.asked; // the cache now waits for the mark
    const writingB = cache.set('k', 'b'); // its outbox commit is still to come when the mark arrives
    storage.inner.release();
    await writingB;
    await cache.flush({ timeoutMs: 10_000 });
    expect(await cache.get('k')).toBe('b');
    expect(storedJson(storage, 'k')).toBe('b');
    await cache[ABANDON]();
    const reopened = await durableCache(storage, outboxPath());
    expect(await reopened.get('k')).toBe('b');
    await reopened.close();
  });
});

describe('a local write that loses to a newer write from elsewhere', () => {
  it('is reported: event, stat and a warn log with the key and both versions', async () => {
    const storage = faultyMemory();
    const log = capturingLogger();
    const { cache } = await memoryCache({
      storage,
      logger: log.logger,
      flush: { batchSize: 50, intervalMs: 60_000, concurrency: 1 },
    });
    await anchored(cache);
    const events: SupersededWrite[] = [];
    cache.on('superseded', (event) => events.push(event));

    await cache.set('k', 'mine');
    // Another instance writes k afterwards (its clock ahead of ours) and flushes first.
    const theirs = aheadVersion();
    await storage.apply([{ key: 'k', version: theirs, json: '"theirs"', expiresAt: null }]);
    await cache.flush();

    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event).toMatchObject({ key: 'k', storedVersion: theirs });
    expect(event?.localVersion).toBeLessThan(theirs);
    expect(cache.stats().superseded).toBe(1);
    const warnings = log.at('warn').filter((line) => line.key === 'k');
    expect(warnings).toEqual([
      expect.objectContaining({ key: 'k', localVersion: event?.localVersion, storedVersion: theirs }),
    ]);
    expect(await cache.get('k')).toBe('theirs');
    expect(storedJson(storage, 'k')).toBe('theirs');
  });

  it('lets the later of two instances win, and tells the one that lost', async () => {
    const storage = faultyMemory();
    const open = () =>
      createHybridCache<string>({
        storage,
        outbox: { durability: 'none' },
        flush: { batchSize: 50, intervalMs: 60_000, concurrency: 1 },
        logger: silentLogger,
      });
    const [a, b] = await Promise.all([open(), open()]);
    await anchored(a);
    await anchored(b);
    const lost: SupersededWrite[] = [];
    a.on('superseded', (event) => lost.push(event));
    b.on('superseded', () => expect.unreachable('the later write must not lose'));

    await a.set('k', 'earlier');
    // b writes strictly later: its wall clock reads 5 ms on.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 5 });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    await b.set('k', 'later');
    await b.flush();
    await a.flush();

    expect(storedJson(storage, 'k')).toBe('later');
    expect(lost.map((event) => event.key)).toEqual(['k']);
    expect(a.stats().superseded).toBe(1);
    expect(b.stats().superseded).toBe(0);
    expect(await a.get('k')).toBe('later');
  });

  it('keeps its version when replayed after a crash, so it cannot overwrite a newer write that followed it', async () => {
    const storage = faultyMemory();
    const path = outboxPath();
    const first = await durableCache(storage, path, { retry: { baseMs: 60_000, maxMs: 60_000 } });
    await anchored(first);
    // The write reaches the store but its answer is lost; the process dies before retrying.
    storage.commitThenFailNext(1);
    await first.set('k', 'mine');
    await vi.waitFor(() => expect(storedJson(storage, 'k')).toBe('mine'));
    await first[ABANDON]();
    const mine = storage.inner.peek('k')?.version as number;
    await storage.apply([{ key: 'k', version: mine + 1, json: '"theirs"', expiresAt: null }]);

    const second = await durableCache(storage, path);
    const lost: SupersededWrite[] = [];
    second.on('superseded', (event) => lost.push(event));
    await second.flush({ timeoutMs: 10_000 });
    expect(storedJson(storage, 'k')).toBe('theirs');
    expect(lost).toEqual([{ key: 'k', localVersion: mine, storedVersion: mine + 1 }]);
    expect(await second.get('k')).toBe('theirs');
    await second.close();
  });

  it('is reported once, for the latest local write, when a newer local write replaced the one that lost', async () => {
    const storage = faultyMemory();
    const { cache } = await memoryCache({ storage });
    await anchored(cache);
    await cache.set('k', 'first');
    await storage.inner.apply([{ key: 'k', version: aheadVersion(), json: '"theirs"', expiresAt: null }]);
    // While 'first' is on its way to the store, a newer local write replaces it in memory.
    const apply = storage.apply.bind(storage);
    let replaced = false;
    storage.apply = async (writes, options) => {
      if (!replaced) {
        replaced = true;
        await cache.set('k', 'second');
      }
      return apply(writes, options);
    };
    await cache.flush();
    expect(replaced).toBe(true);
    await cache.flush(); // 'second'
    expect(cache.stats().superseded).toBe(1);
    expect(await cache.get('k')).toBe('theirs');
  });
});
