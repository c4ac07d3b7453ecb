import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStorage, SqliteStorage, type Storage, type VersionedWrite } from '../../../src/index.js';
import { FaultyStorage } from '../../../src/testing/index.js';
import { memoryCache } from '../../helpers/cache.js';

afterEach(() => {
  vi.useRealTimers();
});

/**
 * Two processes minting exactly the same version for one key: here two caches over one store with
 * the same frozen wall clock, so both mint `ms * 1024` for their first write.
 */
async function twoCachesOneClock(inner: Storage) {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date('2026-12-06T12:00:00Z'));
  const storage = new FaultyStorage(inner);
  const sent: VersionedWrite[] = [];
  const apply = storage.apply.bind(storage);
  storage.apply = async (writes, opts) => {
    sent.push(...writes);
    return apply(writes, opts);
  };
  // Not following the feed: a cache that saw the other's write would mint above it, and never tie.
  const a = (await memoryCache({ storage, feed: false })).cache;
  const b = (await memoryCache({ storage, feed: false })).cache;
  // Both clocks anchored on the empty store, so neither has seen the other's version.
  await vi.waitFor(() => expect(a.stats().clockAnchored && b.stats().clockAnchored).toBe(true));
  return { storage, sent, a, b };
}

const stores = [
  ['MemoryStorage', () => new MemoryStorage()],
  ['SqliteStorage', () => new SqliteStorage({ path: ':memory:' })],
] as const;

describe.each(stores)('two caches writing one key at the same version (%s)', (_name, open) => {
  for (const first of ['a', 'b'] as const) {
    it(`both converge on the write that reached the store first (${first} flushes first)`, async () => {
      const { storage, sent, a, b } = await twoCachesOneClock(open());
      const caches = { a, b };
      const second = first === 'a' ? 'b' : 'a';
      const lost: unknown[] = [];
      caches[second].on('superseded', (event) => lost.push(event));
      await a.set('k', 'from-a');
      await b.set('k', 'from-b');
      await caches[first].flush();
      await caches[second].flush();

      const versions = sent.filter((w) => w.key === 'k').map((w) => w.version);
      expect(versions).toHaveLength(2);
      expect(versions[0]).toBe(versions[1]); // a real tie
      const winner = `from-${first}`;
      expect(JSON.parse((await storage.inner.getMany(['k'])).get('k')?.json ?? 'null')).toBe(winner);
      expect(await a.get('k')).toBe(winner);
      expect(await b.get('k')).toBe(winner);
      // The loser is told and says so; the winner reports nothing.
      expect(lost).toEqual([{ key: 'k', localVersion: versions[0], storedVersion: versions[0] }]);
      expect(caches[second].stats().superseded).toBe(1);
      expect(caches[first].stats().superseded).toBe(0);
      await a.close();
      await b.close();
    });
  }

  it('a write re-sent at its own version is still stale, known as ours, and changes nothing', async () => {
    const { storage, sent, a, b } = await twoCachesOneClock(open());
    storage.commitThenFailNext(1); // a's write commits, its answer is lost, and it is sent again
    await a.set('k', 'from-a');
    await a.flush();
    await b.set('k', 'from-b');
    await b.flush();
    const ours = sent.find((w) => w.key === 'k' && w.json === '"from-a"') as VersionedWrite;
    expect(
      sent.filter((w) => w.key === ours.key && w.version === ours.version && w.json === ours.json),
    ).toHaveLength(2);
    expect(await storage.inner.apply([ours])).toEqual([
      { status: 'stale', storedVersion: ours.version, storedDiffers: false },
    ]);
    expect((await storage.inner.getMany(['k'])).get('k')).toMatchObject({
      version: ours.version,
      json: '"from-a"',
    });
    expect(a.stats().superseded).toBe(0);
    expect(await a.get('k')).toBe('from-a');
    expect(await b.get('k')).toBe('from-a');
    await a.close();
    await b.close();
  });
});
