import { afterEach, describe, expect, it } from 'vitest';
import type { HybridCache } from '../../../src/cache/hybrid-cache.js';
import type { CacheEvents } from '../../../src/cache/types.js';
import {
  type ApplyOptions,
  type FeedReadOptions,
  MemoryStorage,
  type Storage,
  type StorageCallOptions,
  type VersionedWrite,
} from '../../../src/index.js';
import { memoryCache } from '../../helpers/cache.js';

const FOLLOW = { feed: { pollIntervalMs: 5 }, maxStalenessMs: 60 } as const;

const open: HybridCache[] = [];
afterEach(async () => {
  for (const cache of open.splice(0)) if (cache.isOpen) await cache.close({ timeoutMs: 100 });
});

/** One cache's view of a shared store, recording the origins it writes with and skips. */
class Recording implements Storage {
  readonly written = new Set<string | undefined>();
  readonly skipped = new Set<string | undefined>();
  readonly inner: MemoryStorage;
  constructor(inner: MemoryStorage) {
    this.inner = inner;
  }
  getMany(keys: string[], opts?: StorageCallOptions) {
    return this.inner.getMany(keys, opts);
  }
  apply(writes: VersionedWrite[], opts?: ApplyOptions) {
    this.written.add(opts?.origin);
    return this.inner.apply(writes, opts);
  }
  highWaterMark(opts?: StorageCallOptions) {
    return this.inner.highWaterMark(opts);
  }
  changes(after: string | null, opts?: FeedReadOptions) {
    this.skipped.add(opts?.skipOrigin);
    return this.inner.changes(after, opts);
  }
}

async function instance(storage: Storage) {
  const { cache } = await memoryCache<unknown, Storage>({ storage, ...FOLLOW });
  open.push(cache);
  return cache;
}

/** Every key `cache` announces as changed, and a promise for the first announcement of `key`. */
function announcements(cache: HybridCache) {
  const keys: string[] = [];
  const waiting = new Map<string, () => void>();
  cache.on('changes', (event: CacheEvents['changes']) => {
    for (const change of event.changes) {
      keys.push(change.key);
      waiting.get(change.key)?.();
    }
  });
  return {
    keys,
    of: (key: string) => new Promise<void>((resolve) => waiting.set(key, resolve)),
  };
}

describe("a cache's own changes in its store's feed", () => {
  it('are written with its origin, which its follower asks the store to skip; each cache has its own', async () => {
    const store = new MemoryStorage();
    const [a, b] = [new Recording(store), new Recording(store)];
    const [first, second] = [await instance(a), await instance(b)];
    await first.set('k', 1);
    await second.set('k', 2);
    await Promise.all([first.flush(), second.flush()]);
    // A read waits for the follower's first read of the feed.
    await Promise.all([first.get('other'), second.get('other')]);
    for (const view of [a, b]) {
      expect(view.written.size).toBe(1);
      const [origin] = view.written;
      expect(origin).toMatch(/^[0-9a-f-]{36}$/);
      expect([...view.skipped]).toEqual([origin]);
    }
    expect([...a.written]).not.toEqual([...b.written]);
  });

  it('are not announced to it, while two caches over one store still see each other’s', async () => {
    const store = new MemoryStorage();
    const [first, second] = [await instance(store), await instance(store)];
    const [firstHeard, secondHeard] = [announcements(first), announcements(second)];
    await first.set('shared', 'v1');
    await first.flush();
    expect(await second.get('shared')).toBe('v1');

    const seen = secondHeard.of('shared');
    await first.set('shared', 'v2');
    await first.set('mine', 1);
    await first.flush();
    await seen;
    expect(await second.get('shared')).toBe('v2');

    // The feed is read in commit order: once the first cache hears the second's later write, it
    // has read past its own, which it was never told about.
    const marker = firstHeard.of('marker');
    await second.set('marker', 1);
    await second.flush();
    await marker;
    expect(firstHeard.keys).toEqual(['marker']);
    expect(secondHeard.keys).toEqual(expect.arrayContaining(['shared', 'mine']));
    expect(secondHeard.keys).not.toContain('marker');
    expect(first.stats().feedDrops).toBe(0);
  });
});
