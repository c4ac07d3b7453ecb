import { describe, expect, it, vi } from 'vitest';
import { serializedEntry } from '../../../src/cache/entry.js';
import type { Loader, LoadResult } from '../../../src/cache/loader.js';
import { MemoryTier } from '../../../src/cache/memory-tier.js';
import { type AskAgain, MAX_STORE_ASKS, ReadPath } from '../../../src/cache/read-path.js';
import { StorageUnavailableError } from '../../../src/index.js';
import type { StoredEntry } from '../../../src/storage/contract/types.js';
import { HybridLogicalClock } from '../../../src/sync/clock/hlc.js';

const live = (json: string, version = 10): StoredEntry => ({ version, json, expiresAt: null });

/** A read path over a loader that answers from a script, one answer per store read. */
function readPathOver(
  answers: Array<LoadResult | (() => LoadResult)>,
  options: { pendingFlushed?: (key: string) => Promise<void> } = {},
) {
  const tier = new MemoryTier({ maxEntries: 10, maxBytes: 1 << 20, onEvict: () => {} });
  const asked: Array<[string, AskAgain]> = [];
  let loads = 0;
  const loader = {
    load: async () => {
      const answer = answers[Math.min(loads, answers.length - 1)] as LoadResult | (() => LoadResult);
      loads++;
      return typeof answer === 'function' ? answer() : answer;
    },
  } as unknown as Loader;
  const reads = new ReadPath({
    tier,
    loader,
    clock: new HybridLogicalClock(),
    pendingFlushed: options.pendingFlushed ?? (async () => {}),
    onAskAgain: (key, reason) => asked.push([key, reason]),
  });
  return { reads, tier, asked, loads: () => loads };
}

describe('ReadPath', () => {
  it('answers from the first store read when nothing raced it', async () => {
    const { reads, asked, loads } = readPathOver([
      { stored: live('"v"'), writtenDuringRead: false, outdated: false },
    ]);
    expect(await reads.value('k')).toBe('v');
    expect(loads()).toBe(1);
    expect(asked).toEqual([]);
  });

  it('asks again, naming why, when a local write overtook the read, and answers from the next read', async () => {
    const { reads, asked, loads } = readPathOver([
      { stored: live('"old"', 5), writtenDuringRead: true, outdated: false },
      { stored: live('"new"', 9), writtenDuringRead: false, outdated: false },
    ]);
    expect(await reads.value('k')).toBe('new');
    expect(asked).toEqual([['k', 'written-during-read']]);
    expect(loads()).toBe(2);
  });

  it(`gives up after ${MAX_STORE_ASKS} reads that were all overtaken, with StorageUnavailableError naming the key and the reason`, async () => {
    const { reads, asked, loads } = readPathOver([
      { stored: live('"old"'), writtenDuringRead: true, outdated: false },
    ]);
    const error = await reads.value('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(String(error)).toContain(`k kept changing while it was read: ${MAX_STORE_ASKS} store reads`);
    expect(String(error)).toContain('written-during-read');
    expect(loads()).toBe(MAX_STORE_ASKS);
    expect(asked).toHaveLength(MAX_STORE_ASKS - 1);
  });

  it('the same bound holds for getWithItems', async () => {
    const { reads, loads } = readPathOver([
      { stored: live('"old"'), writtenDuringRead: true, outdated: false },
    ]);
    await expect(reads.valueWithItems('k')).rejects.toBeInstanceOf(StorageUnavailableError);
    expect(loads()).toBe(MAX_STORE_ASKS);
  });

  it('waits for the key’s unflushed items before asking again when the store reads it as absent', async () => {
    let flushed = 0;
    const { reads, tier, asked } = readPathOver(
      [
        { stored: undefined, writtenDuringRead: false, outdated: false },
        { stored: live('"v"'), writtenDuringRead: false, outdated: false },
      ],
      {
        pendingFlushed: async () => {
          flushed++;
          tier.dropItemsUpTo('k', Number.MAX_SAFE_INTEGER, true);
        },
      },
    );
    tier.appendItem('k', { id: 'i1', version: 7, json: '"item"' }, null, 40, Date.now());
    expect(await reads.value('k')).toBe('v');
    expect(flushed).toBe(1);
    expect(asked).toEqual([['k', 'items-waiting']]);
  });

  it('waits for an unflushed value whose stored log is unknown before asking again when the store reads the key as absent', async () => {
    let flushed = 0;
    const { reads, tier, asked } = readPathOver(
      [
        { stored: undefined, writtenDuringRead: false, outdated: false },
        {
          stored: { ...live('"v"', 20), items: [{ id: 'i1', version: 7, json: '"item"' }] },
          writtenDuringRead: false,
          outdated: false,
        },
      ],
      {
        pendingFlushed: async () => {
          flushed++;
          tier.markFlushed('k', 20);
        },
      },
    );
    // Written a millisecond ago over a value memory never read, which may have expired since.
    tier.putDirty('k', serializedEntry(20, '"v"', null, 64), Date.now() - 1);
    expect(await reads.valueWithItems('k')).toEqual({ value: 'v', items: ['item'] });
    expect(flushed).toBe(1);
    expect(asked).toEqual([['k', 'value-waiting']]);
  });

  it.each([
    ['an older value', live('"old"', 5)],
    ['the key absent', undefined],
  ])(
    'asks again when the store answers %s while the unflushed value the read began with was flushed and evicted during it',
    async (_, answer) => {
      const { reads, tier, asked, loads } = readPathOver([
        () => {
          // During the read: the value is flushed, then evicted by newer entries (a small LRU).
          tier.markFlushed('k', 20);
          for (let i = 0; i < 12; i++) tier.putLoaded(`other-${i}`, live('"x"', 1));
          return { stored: answer, writtenDuringRead: false, outdated: false };
        },
        { stored: live('"v"', 20), writtenDuringRead: false, outdated: false },
      ]);
      // Replayed after a restart: unflushed, its stored log unknown, so getWithItems reads the store.
      tier.putDirty('k', serializedEntry(20, '"v"', null, 64), Date.now() - 5_000);
      expect(await reads.valueWithItems('k')).toEqual({ value: 'v', items: [] });
      expect(asked).toEqual([['k', 'flushed-during-read']]);
      expect(loads()).toBe(2);
    },
  );

  it('asks once more, then answers the store, when the unflushed value left memory without reaching the store (dead-lettered)', async () => {
    const { reads, tier, asked, loads } = readPathOver([
      () => {
        tier.discard('k', 20);
        return { stored: live('"old"', 5), writtenDuringRead: false, outdated: false };
      },
      { stored: live('"old"', 5), writtenDuringRead: false, outdated: false },
    ]);
    tier.putDirty('k', serializedEntry(20, '"v"', null, 64), Date.now() - 5_000);
    expect(await reads.valueWithItems('k')).toEqual({ value: 'old', items: [] });
    expect(asked).toEqual([['k', 'flushed-during-read']]);
    expect(loads()).toBe(2);
  });

  it('answers an unflushed value written this millisecond from an absent store read: nothing can have expired since', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const { reads, tier, asked } = readPathOver([
        { stored: undefined, writtenDuringRead: false, outdated: false },
      ]);
      tier.putDirty('k', serializedEntry(20, '"v"', null, 64), Date.now());
      expect(await reads.valueWithItems('k')).toEqual({ value: 'v', items: [] });
      expect(asked).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  /** A local write of `json` at `version` lands in memory (as the write pipeline puts it there). */
  const writeLocally = (tier: MemoryTier, json: string | null, version: number, log?: []) =>
    tier.putDirty('k', serializedEntry(version, json, null, 64, log), Date.now());

  const overtakenForever = { stored: live('"old"', 5), writtenDuringRead: true, outdated: false };

  it('asked again, answers with the local write that overtook the read, without reading the store again', async () => {
    const { reads, tier, asked, loads } = readPathOver([
      () => {
        writeLocally(tier, '"mine"', 20);
        return overtakenForever;
      },
      overtakenForever,
    ]);
    expect(await reads.value('k')).toBe('mine');
    expect(loads()).toBe(1);
    expect(asked).toEqual([['k', 'written-during-read']]);
  });

  it('asked again, answers with a local delete that overtook the read', async () => {
    const { reads, tier, loads } = readPathOver([
      () => {
        writeLocally(tier, null, 20);
        return overtakenForever;
      },
      overtakenForever,
    ]);
    expect(await reads.value('k')).toBeUndefined();
    expect(loads()).toBe(1);
  });

  it('the first ask always reads the store, even when memory already holds the key (the caller missed it)', async () => {
    const { reads, tier, loads } = readPathOver([
      { stored: live('"stored"', 10), writtenDuringRead: false, outdated: false },
    ]);
    writeLocally(tier, '"mine"', 20, []);
    expect(await reads.value('k')).toBe('mine');
    expect(loads()).toBe(1);
    expect(await reads.valueWithItems('k')).toEqual({ value: 'mine', items: [] });
    expect(loads()).toBe(2);
  });

  it('getWithItems, asked again, answers with the local value and items that overtook the read', async () => {
    const { reads, tier, asked, loads } = readPathOver([
      () => {
        writeLocally(tier, '"mine"', 20, []);
        tier.appendItem('k', { id: 'i1', version: 21, json: '"item"' }, null, 40, Date.now());
        return overtakenForever;
      },
      overtakenForever,
    ]);
    const answer = await reads.valueWithItems('k');
    expect(answer).toStrictEqual({ value: 'mine', items: ['item'] });
    expect(loads()).toBe(1);
    expect(asked).toEqual([['k', 'written-during-read']]);
  });

  it('getWithItems, asked again, answers undefined for a local delete that overtook the read', async () => {
    const { reads, tier, loads } = readPathOver([
      () => {
        writeLocally(tier, null, 20);
        return overtakenForever;
      },
      overtakenForever,
    ]);
    expect(await reads.valueWithItems('k')).toBeUndefined();
    expect(loads()).toBe(1);
  });

  it('does not ask again when the items the store took during the read are in its answer', async () => {
    const item = { id: 'i1', version: 7, json: '"item"' };
    const { reads, tier, asked, loads } = readPathOver([
      () => {
        tier.dropItemsUpTo('k', 7, true);
        return { stored: { ...live('"v"', 6), items: [item] }, writtenDuringRead: false, outdated: false };
      },
      { stored: live('"wrong"', 6), writtenDuringRead: false, outdated: false },
    ]);
    tier.appendItem('k', item, null, 40, Date.now());
    expect(await reads.valueWithItems('k')).toEqual({ value: 'v', items: ['item'] });
    expect(loads()).toBe(1);
    expect(asked).toEqual([]);
  });

  it('asks again when one item the store took during the read is missing from its answer, though another is still unflushed', async () => {
    const first = { id: 'i1', version: 7, json: '"one"' };
    const second = { id: 'i2', version: 8, json: '"two"' };
    const { reads, tier, asked, loads } = readPathOver([
      () => {
        tier.dropItemsUpTo('k', 7, true);
        return { stored: { ...live('"v"', 6), items: [] }, writtenDuringRead: false, outdated: false };
      },
      { stored: { ...live('"v"', 6), items: [first] }, writtenDuringRead: false, outdated: false },
    ]);
    tier.appendItem('k', first, null, 40, Date.now());
    tier.appendItem('k', second, null, 40, Date.now());
    expect(await reads.valueWithItems('k')).toEqual({ value: 'v', items: ['one', 'two'] });
    expect(asked).toEqual([['k', 'items-settled-unseen']]);
    expect(loads()).toBe(2);
  });
});
