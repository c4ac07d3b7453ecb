import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HybridCache } from '../../../src/cache/hybrid-cache.js';
import type { CacheEvents } from '../../../src/cache/types.js';
import {
  type FeedPage,
  type FeedReadOptions,
  MemoryStorage,
  type Storage,
  type StorageCallOptions,
  type VersionedWrite,
} from '../../../src/index.js';
import { FaultyStorage } from '../../../src/testing/index.js';
import { memoryCache } from '../../helpers/cache.js';
import { IgnoresOrigins } from '../../support/ignores-origins.js';

const FOLLOW = { feed: { pollIntervalMs: 5 }, maxStalenessMs: 60 } as const;

const open: HybridCache[] = [];
afterEach(async () => {
  for (const cache of open.splice(0)) if (cache.isOpen) await cache.close({ timeoutMs: 100 });
});

async function instance<S extends Storage>(storage: S, over: Record<string, unknown> = {}) {
  const { cache } = await memoryCache<unknown, S>({ storage, ...FOLLOW, ...over });
  open.push(cache);
  return cache;
}

/** Resolves with the first `changes` event whose changes include every one of `keys`, counting the drops on the way. */
function announced(cache: HybridCache, keys: string[]): Promise<{ dropped: number }> {
  const left = new Set(keys);
  let dropped = 0;
  return new Promise((resolve) => {
    const listener = (event: CacheEvents['changes']) => {
      dropped += event.dropped;
      for (const change of event.changes) left.delete(change.key);
      if (left.size > 0) return;
      cache.off('changes', listener);
      resolve({ dropped });
    };
    cache.on('changes', listener);
  });
}

describe('two caches over one store, each following its change feed', () => {
  it('a reader stops serving values, deletes and logs the writer changed, once they are flushed and announced', async () => {
    const store = new MemoryStorage();
    const writer = await instance(store);
    const reader = await instance(store);
    await writer.set('value', 'v1');
    await writer.set('gone', 'v1');
    await writer.set('log', 'header');
    await writer.append('log', 'i1');
    await writer.flush();
    expect(await reader.get('value')).toBe('v1');
    expect(await reader.get('gone')).toBe('v1');
    expect(await reader.getWithItems('log')).toEqual({ value: 'header', items: ['i1'] });
    const loads = reader.stats().loads;

    const seen = announced(reader, ['value', 'gone', 'log']);
    await writer.set('value', 'v2');
    await writer.delete('gone');
    await writer.append('log', 'i2');
    await writer.flush();
    expect((await seen).dropped).toBe(3);

    expect(await reader.get('value')).toBe('v2');
    expect(await reader.get('gone')).toBeUndefined();
    expect(await reader.getWithItems('log')).toEqual({ value: 'header', items: ['i1', 'i2'] });
    expect(reader.stats().loads).toBe(loads + 3);
    expect(reader.stats()).toMatchObject({ feedState: 'following', feedDrops: 3 });
  });

  it('its own changes, from a store that does not leave them out, drop nothing: what it wrote is still served from memory', async () => {
    const store = new IgnoresOrigins();
    const writer = await instance(store);
    const own = announced(writer, ['a', 'l']);
    await writer.set('a', 1);
    await writer.set('l', 'h', { newKey: true });
    await writer.append('l', 'x');
    await writer.flush();
    expect(await own).toEqual({ dropped: 0 });
    const { loads } = writer.stats();
    expect(await writer.get('a')).toBe(1);
    expect(await writer.getWithItems('l')).toEqual({ value: 'h', items: ['x'] });
    expect(writer.stats().loads).toBe(loads);
    expect(writer.stats().feedDrops).toBe(0);
  });
});

/** A store whose reads wait at `gate` after reading (so they answer what was there before). */
class GatedReads extends MemoryStorage {
  gate: Promise<void> | undefined;
  override async getMany(keys: string[], opts?: StorageCallOptions) {
    const found = await super.getMany(keys, opts);
    await this.gate;
    return found;
  }
}

describe('a read in flight when a change is announced', () => {
  it('is answered with what it read, and not kept: the next read asks the store again', async () => {
    const store = new GatedReads();
    const writer = await instance(store);
    const reader = await instance(store);
    await writer.set('k', 'old');
    await writer.flush();
    let open: () => void = () => {};
    store.gate = new Promise((resolve) => {
      open = resolve;
    });
    const inFlight = reader.get('k');
    const seen = announced(reader, ['k']);
    await writer.set('k', 'new');
    await writer.flush();
    await seen;
    open();
    expect(await inFlight).toBe('old');
    store.gate = undefined;
    expect(await reader.get('k')).toBe('new');
  });
});

/** A store whose feed can be held: reads of it wait until released. */
class HeldFeed extends MemoryStorage {
  held: Promise<void> | undefined;
  override async changes(after: string | null, opts?: FeedReadOptions): Promise<FeedPage> {
    await this.held;
    return super.changes(after, opts);
  }
}

describe('vouching', () => {
  it('past maxStalenessMs, a read of a clean entry first reads the feed to its end, and then serves the change', async () => {
    const store = new HeldFeed();
    const writer = await instance(store, { feed: false });
    const reader = await instance(store);
    await writer.set('k', 'old');
    await writer.flush();
    expect(await reader.get('k')).toBe('old');
    let release: () => void = () => {};
    store.held = new Promise((resolve) => {
      release = resolve;
    });
    await vi.waitFor(() => expect(reader.stats().feedState).toBe('behind'), { timeout: 5_000 });
    await writer.set('k', 'new');
    await writer.flush();
    const read = reader.get('k');
    release();
    expect(await read).toBe('new');
    expect(reader.stats()).toMatchObject({ revalidations: 1, possiblyStaleReads: 0 });
  });

  it('past maxStalenessMs, a read of a value with its log first reads the feed to its end, and then serves the change', async () => {
    const store = new HeldFeed();
    const writer = await instance(store, { feed: false });
    const reader = await instance(store);
    await writer.set('k', 'old');
    await writer.append('k', 'i1');
    await writer.flush();
    expect(await reader.getWithItems('k')).toEqual({ value: 'old', items: ['i1'] });
    let release: () => void = () => {};
    store.held = new Promise((resolve) => {
      release = resolve;
    });
    await vi.waitFor(() => expect(reader.stats().feedState).toBe('behind'), { timeout: 5_000 });
    await writer.append('k', 'i2');
    await writer.flush();
    const read = reader.getWithItems('k');
    release();
    expect(await read).toEqual({ value: 'old', items: ['i1', 'i2'] });
    expect(reader.stats()).toMatchObject({ revalidations: 1, possiblyStaleReads: 0 });
  });

  it('with the store unreachable past the bound, memory answers and the read is counted possibly stale', async () => {
    const store = new FaultyStorage(new MemoryStorage());
    const cache = await instance(store, { breaker: { failureThreshold: 3, halfOpenAfterMs: 50 } });
    await cache.set('k', 'v', { newKey: true });
    await cache.flush();
    store.goDown();
    await vi.waitFor(() => expect(cache.stats().feedState).toBe('behind'), { timeout: 5_000 });
    expect(await cache.get('k')).toBe('v');
    expect(await cache.getWithItems('k')).toEqual({ value: 'v', items: [] });
    expect(cache.stats()).toMatchObject({ revalidations: 2, possiblyStaleReads: 2 });
    expect(cache.stats().feedLagMs).toBeGreaterThanOrEqual(60);
    store.comeUp();
    await vi.waitFor(() => expect(cache.stats().feedState).toBe('following'), { timeout: 5_000 });
    expect(await cache.get('k')).toBe('v');
    expect(cache.stats().revalidations).toBe(2);
  });

  it('unflushed writes are always served: they are this instance’s own', async () => {
    const store = new FaultyStorage(new MemoryStorage());
    const cache = await instance(store);
    // A new key: memory knows its log (none), so a read of the value with its log needs no store.
    await cache.set('log', 'first', { newKey: true });
    store.goDown();
    await cache.set('k', 'pending');
    await cache.set('log', 'second');
    await cache.append('log', 'mine');
    await vi.waitFor(() => expect(cache.stats().feedState).toBe('behind'), { timeout: 5_000 });
    expect(await cache.get('k')).toBe('pending');
    expect(await cache.getWithItems('log')).toEqual({ value: 'second', items: ['mine'] });
    expect(cache.stats().revalidations).toBe(0);
  });
});

/** Delegates to whichever MemoryStorage is current, so a test can replace the store under a cache. */
class Replaceable implements Storage {
  constructor(public current: MemoryStorage) {}
  getMany(keys: string[], opts?: StorageCallOptions) {
    return this.current.getMany(keys, opts);
  }
  apply(writes: VersionedWrite[], opts?: StorageCallOptions) {
    return this.current.apply(writes, opts);
  }
  highWaterMark(opts?: StorageCallOptions) {
    return this.current.highWaterMark(opts);
  }
  changes(after: string | null, opts?: FeedReadOptions) {
    return this.current.changes(after, opts);
  }
}

describe('a store replaced under the cache (another epoch)', () => {
  it('drops every clean entry, says so, and reads the new store', async () => {
    const store = new Replaceable(new MemoryStorage());
    const cache = await instance(store);
    await cache.set('a', 'first store');
    await cache.set('b', 'first store');
    await cache.flush();
    expect(await cache.get('a')).toBe('first store');
    const restored = new MemoryStorage();
    const { version } = (await store.current.getMany(['a'])).get('a') as { version: number };
    await restored.apply([{ key: 'a', version: version - 1, json: '"restored"', expiresAt: null }]);
    const reset = new Promise<CacheEvents['feedReset']>((resolve) => cache.on('feedReset', resolve));
    store.current = restored;
    expect(await reset).toEqual({ reason: 'epoch', dropped: 2 });
    expect(await cache.get('a')).toBe('restored');
    expect(await cache.get('b')).toBeUndefined();
    expect(cache.stats().feedResets).toBe(1);
  });
});

describe('following, on or off', () => {
  it('is off with feed: false: the feed is never read', async () => {
    const store = new FaultyStorage(new MemoryStorage());
    const cache = await instance(store, { feed: false });
    await cache.set('k', 1);
    await cache.flush();
    expect(await cache.get('k')).toBe(1);
    expect(store.calls.changes).toBe(0);
    expect(cache.stats().feedState).toBe('off');
  });

  it('is unsupported over a store without a feed, and memory answers as before', async () => {
    const inner = new MemoryStorage();
    const store: Storage = {
      getMany: (keys, opts) => inner.getMany(keys, opts),
      apply: (writes, opts) => inner.apply(writes, opts),
      highWaterMark: (opts) => inner.highWaterMark(opts),
    };
    const cache = await instance(store);
    await cache.set('k', 1);
    await cache.flush();
    expect(await cache.get('k')).toBe(1);
    expect(cache.stats()).toMatchObject({ feedState: 'unsupported', revalidations: 0 });
  });
});
