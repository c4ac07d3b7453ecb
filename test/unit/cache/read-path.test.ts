import { describe, expect, it } from 'vitest';
import type { Loader, LoadResult } from '../../../src/cache/loader.js';
import { MemoryTier } from '../../../src/cache/memory-tier.js';
import { type AskAgain, MAX_STORE_ASKS, ReadPath } from '../../../src/cache/read-path.js';
import { StorageUnavailableError } from '../../../src/index.js';
import type { StoredEntry } from '../../../src/storage/contract/types.js';
import { HybridLogicalClock } from '../../../src/sync/clock/hlc.js';

const live = (json: string, version = 10): StoredEntry => ({ version, json, expiresAt: null });

/** A read path over a loader that answers from a script, one answer per store read. */
function readPathOver(
  answers: LoadResult[],
  options: { itemsFlushed?: (key: string) => Promise<void> } = {},
) {
  const tier = new MemoryTier({ maxEntries: 10, maxBytes: 1 << 20, onEvict: () => {} });
  const asked: Array<[string, AskAgain]> = [];
  let loads = 0;
  const loader = {
    load: async () => {
      const answer = answers[Math.min(loads, answers.length - 1)] as LoadResult;
      loads++;
      return answer;
    },
  } as unknown as Loader;
  const reads = new ReadPath({
    tier,
    loader,
    clock: new HybridLogicalClock(),
    itemsFlushed: options.itemsFlushed ?? (async () => {}),
    onAskAgain: (key, reason) => asked.push([key, reason]),
  });
  return { reads, tier, asked, loads: () => loads };
}

describe('ReadPath', () => {
  it('answers from the first store read when nothing raced it', async () => {
    const { reads, asked, loads } = readPathOver([{ stored: live('"v"'), writtenDuringRead: false }]);
    expect(await reads.value('k')).toBe('v');
    expect(loads()).toBe(1);
    expect(asked).toEqual([]);
  });

  it('asks again, naming why, when a local write overtook the read, and answers from the next read', async () => {
    const { reads, asked, loads } = readPathOver([
      { stored: live('"old"', 5), writtenDuringRead: true },
      { stored: live('"new"', 9), writtenDuringRead: false },
    ]);
    expect(await reads.value('k')).toBe('new');
    expect(asked).toEqual([['k', 'written-during-read']]);
    expect(loads()).toBe(2);
  });

  it(`gives up after ${MAX_STORE_ASKS} reads that were all overtaken, with StorageUnavailableError naming the key and the reason`, async () => {
    const { reads, asked, loads } = readPathOver([{ stored: live('"old"'), writtenDuringRead: true }]);
    const error = await reads.value('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(String(error)).toContain(`k kept changing while it was read: ${MAX_STORE_ASKS} store reads`);
    expect(String(error)).toContain('written-during-read');
    expect(loads()).toBe(MAX_STORE_ASKS);
    expect(asked).toHaveLength(MAX_STORE_ASKS - 1);
  });

  it('the same bound holds for getWithItems', async () => {
    const { reads, loads } = readPathOver([{ stored: live('"old"'), writtenDuringRead: true }]);
    await expect(reads.valueWithItems('k')).rejects.toBeInstanceOf(StorageUnavailableError);
    expect(loads()).toBe(MAX_STORE_ASKS);
  });

  it('waits for the key’s unflushed items before asking again when the store reads it as absent', async () => {
    let flushed = 0;
    const { reads, tier, asked } = readPathOver(
      [
        { stored: undefined, writtenDuringRead: false },
        { stored: live('"v"'), writtenDuringRead: false },
      ],
      {
        itemsFlushed: async () => {
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
});
