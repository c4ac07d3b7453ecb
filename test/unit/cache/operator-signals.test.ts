import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HybridCache } from '../../../src/cache/hybrid-cache.js';
import type { CacheEvents } from '../../../src/cache/types.js';
import {
  type DoorbellState,
  type FeedPage,
  type FeedReadOptions,
  LOGICAL_SLOTS,
  MemoryStorage,
  type StorageCallOptions,
  StorageUnavailableError,
  type VersionedWrite,
} from '../../../src/index.js';
import { capturingLogger, memoryCache, settleWithTimers } from '../../helpers/cache.js';
import { GatedWrites } from '../../helpers/gated-writes.js';

const YEAR = 365 * 24 * 3_600_000;
const FOLLOW = { feed: { pollIntervalMs: 5 }, maxStalenessMs: 60 } as const;

const open: HybridCache[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  vi.useRealTimers();
  for (const cache of open.splice(0)) if (cache.isOpen) await cache.close({ timeoutMs: 100 });
});

/**
 * A MemoryStorage whose feed the test can script: the next read can fail or report its changes
 * pruned, and it has a doorbell the test rings.
 */
class ScriptedFeed {
  readonly inner = new MemoryStorage();
  next: 'fail' | 'pruned' | undefined;
  feedReads = 0;
  readonly rings = new Set<() => void>();

  getMany(keys: string[], opts?: StorageCallOptions) {
    return this.inner.getMany(keys, opts);
  }
  apply(writes: VersionedWrite[], opts?: StorageCallOptions) {
    return this.inner.apply(writes, opts);
  }
  highWaterMark(opts?: StorageCallOptions) {
    return this.inner.highWaterMark(opts);
  }
  async changes(after: string | null, opts?: FeedReadOptions): Promise<FeedPage> {
    this.feedReads++;
    const next = this.next;
    this.next = undefined;
    if (next === 'fail') throw new Error('the feed is down');
    const page = await this.inner.changes(after, opts);
    return next === 'pruned' ? { ...page, reset: true } : page;
  }
  onChange(listener: () => void): () => void {
    this.rings.add(listener);
    return () => this.rings.delete(listener);
  }
  doorbellState(): DoorbellState {
    return 'listening';
  }
}

async function cacheOver<S extends object>(storage: S, over: Record<string, unknown> = {}) {
  const log = capturingLogger();
  const { cache } = await memoryCache<unknown, never>({
    storage: storage as never,
    logger: log.logger,
    ...FOLLOW,
    ...over,
  });
  open.push(cache);
  return { cache, log };
}

/** Resolves with the next event of its kind. */
function next<E extends keyof CacheEvents>(cache: HybridCache, event: E): Promise<CacheEvents[E]> {
  return new Promise((resolve) => {
    const listener = (payload: CacheEvents[E]) => {
      cache.off(event, listener);
      resolve(payload);
    };
    cache.on(event, listener);
  });
}

describe('a wall clock that jumps a year ahead and back, as operators see it', () => {
  it('logs an error with the reading and the time used instead, then a warning with the first sensible reading', async () => {
    const { cache, log } = await cacheOver(new MemoryStorage(), { feed: false });
    await cache.set('before', 1);
    const realNow = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now');
    const jumped = realNow() + YEAR;
    spy.mockReturnValue(jumped);
    const beforeJump = realNow();
    await cache.set('during', 2);
    const afterJump = realNow();

    const [distrust] = log.at('error');
    expect(distrust?.msg).toBe(
      'the wall clock jumped implausibly far ahead; versions follow the monotonic clock until it reads sensibly again',
    );
    expect(distrust?.readingTime).toBe(new Date(jumped).toISOString());
    const trusted = Date.parse(distrust?.trustedTime as string);
    expect(trusted).toBeGreaterThanOrEqual(beforeJump - 1_000);
    expect(trusted).toBeLessThanOrEqual(afterJump + 1_000);
    expect(log.at('warn')).toEqual([]);

    spy.mockImplementation(realNow);
    const back = realNow();
    await cache.set('after', 3);
    const sensible = log.at('warn').filter((l) => l.msg === 'the wall clock reads sensibly again');
    expect(sensible).toHaveLength(1);
    expect(Date.parse(sensible[0]?.readingTime as string)).toBeGreaterThanOrEqual(back);
    expect(log.at('error')).toHaveLength(1);
  });
});

describe('the change feed, as operators see it', () => {
  it('a store replaced under the cache: a warning naming the reason and what was dropped', async () => {
    const store = new MemoryStorage();
    let current = store;
    const replaceable = {
      getMany: (keys: string[], opts?: StorageCallOptions) => current.getMany(keys, opts),
      apply: (writes: VersionedWrite[], opts?: StorageCallOptions) => current.apply(writes, opts),
      highWaterMark: (opts?: StorageCallOptions) => current.highWaterMark(opts),
      changes: (after: string | null, opts?: FeedReadOptions) => current.changes(after, opts),
    };
    const { cache, log } = await cacheOver(replaceable);
    await cache.set('a', 1);
    await cache.set('b', 2);
    await cache.flush();
    const reset = next(cache, 'feedReset');
    current = new MemoryStorage();
    expect(await reset).toEqual({ reason: 'epoch', dropped: 2 });
    expect(log.at('warn')).toEqual([
      expect.objectContaining({
        reason: 'epoch',
        dropped: 2,
        msg: 'the store was replaced, restored or recreated: every cached entry was dropped',
      }),
    ]);
    expect(cache.stats()).toMatchObject({ feedDrops: 2, feedResets: 1 });
  });

  it('changes pruned before this cache read them: a warning of its own, and the entries dropped', async () => {
    const store = new ScriptedFeed();
    const { cache, log } = await cacheOver(store);
    await cache.set('a', 1);
    await cache.set('b', 2);
    await cache.set('c', 3);
    await cache.flush();
    const reset = next(cache, 'feedReset');
    store.next = 'pruned';
    expect(await reset).toEqual({ reason: 'pruned', dropped: 3 });
    expect(log.at('warn')).toEqual([
      expect.objectContaining({
        reason: 'pruned',
        dropped: 3,
        msg: 'changes this cache had not read yet were pruned from the feed: every cached entry was dropped',
      }),
    ]);
    expect(cache.stats()).toMatchObject({ feedDrops: 3, feedResets: 1 });
  });

  it('a feed read that fails is logged at debug with its error, and following goes on', async () => {
    const store = new ScriptedFeed();
    const { cache, log } = await cacheOver(store);
    await cache.set('a', 1);
    await cache.flush();
    store.next = 'fail';
    const reads = store.feedReads;
    await vi.waitUntil(() => store.feedReads >= reads + 2);
    expect(log.at('debug').filter((l) => l.msg === 'the change feed could not be read')).toEqual([
      expect.objectContaining({ err: expect.objectContaining({ message: 'the feed is down' }) }),
    ]);
    expect(cache.stats().feedState).toBe('following');
  });

  it('counts the changes it received from other instances', async () => {
    const store = new MemoryStorage();
    const { cache: writer } = await cacheOver(store);
    const { cache: reader } = await cacheOver(store);
    await reader.set('own', 0);
    await reader.flush();
    const seen = next(reader, 'changes');
    await writer.set('x', 1);
    await writer.set('y', 2);
    await writer.flush();
    await seen;
    expect(reader.stats().feedChanges).toBeGreaterThanOrEqual(2);
  });

  it("a change from another instance far ahead moves this instance's next versions above it", async () => {
    const store = new MemoryStorage();
    const { cache } = await cacheOver(store);
    await cache.set('mine', 0);
    await cache.flush();
    const ahead = (Date.now() + 3_600_000) * LOGICAL_SLOTS;
    const seen = next(cache, 'changes');
    await store.apply([{ key: 'elsewhere', version: ahead, json: '1', expiresAt: null }]);
    await seen;
    await cache.set('mine', 1);
    await cache.flush();
    expect(store.peek('mine')?.version).toBeGreaterThan(ahead);
  });
});

describe('the doorbell in stats', () => {
  it("reports the store's doorbell while following, and a ring reads the feed at once", async () => {
    const store = new ScriptedFeed();
    const { cache } = await cacheOver(store, {
      feed: { pollIntervalMs: 600_000 },
      maxStalenessMs: 1_200_000,
    });
    await cache.set('a', 1);
    await cache.flush();
    expect(cache.stats().doorbell).toBe('listening');
    await vi.waitUntil(() => store.rings.size === 1);
    const reads = store.feedReads;
    for (const ring of store.rings) ring();
    await vi.waitUntil(() => store.feedReads > reads);
  });

  it('is off when following is turned off, whatever the store says', async () => {
    const store = new ScriptedFeed();
    const { cache } = await cacheOver(store, { feed: false });
    expect(cache.stats().doorbell).toBe('off');
    expect(store.rings.size).toBe(0);
  });

  it('is off over a store without one', async () => {
    const { cache } = await cacheOver(new MemoryStorage());
    expect(cache.stats()).toMatchObject({ doorbell: 'off', feedState: expect.not.stringMatching(/off/) });
  });
});

describe('a read overtaken by a local write', () => {
  it('is logged at debug with the key and the reason, and answers with the write', async () => {
    const store = new MemoryStorage();
    await store.apply([{ key: 'k', version: 1, json: '"stored"', expiresAt: null }]);
    let release = (): void => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    const gated = {
      async getMany(keys: string[], opts?: StorageCallOptions) {
        if (++reads === 1) await held;
        return store.getMany(keys, opts);
      },
      apply: (writes: VersionedWrite[], opts?: StorageCallOptions) => store.apply(writes, opts),
      highWaterMark: (opts?: StorageCallOptions) => store.highWaterMark(opts),
    };
    const { cache, log } = await cacheOver(gated, { feed: false });
    const read = cache.get('k');
    await vi.waitUntil(() => reads === 1);
    await cache.set('k', 'local');
    release();
    expect(await read).toBe('local');
    expect(log.at('debug').filter((l) => l.msg === 'a read asks the store again')).toEqual([
      expect.objectContaining({ key: 'k', reason: 'written-during-read' }),
    ]);
  });
});

describe('a read that waits for an unflushed value', () => {
  it('rejects naming the value when it cannot be flushed within the read timeout', async () => {
    vi.useFakeTimers();
    const storage = new GatedWrites();
    const { cache } = await memoryCache({ storage, writeTimeoutMs: 600_000 });
    open.push(cache);
    await vi.advanceTimersByTimeAsync(0);
    storage.hold();
    await cache.set('k', 'v');
    await vi.advanceTimersByTimeAsync(5);
    const error = await settleWithTimers(cache.getWithItems('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect((error as Error).message).toBe('the value written to k could not be flushed to the store in time');
    storage.release();
    await settleWithTimers(cache.flush());
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: 'v', items: [] });
  });
});
