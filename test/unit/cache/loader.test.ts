import { describe, expect, it, vi } from 'vitest';
import { StorageUnavailableError } from '../../../src/cache/errors.js';
import { Loader } from '../../../src/cache/loader.js';
import type { Storage, StoredEntry } from '../../../src/storage/contract/types.js';
import type { StoreGuard } from '../../../src/sync/flush/store-guard.js';

/** A store whose reads wait until the test answers them, one deferred answer per getMany call. */
function heldStore() {
  const calls: Array<{
    keys: string[];
    answer: (found: Map<string, StoredEntry>) => void;
    fail: (e: Error) => void;
  }> = [];
  const storage = {
    getMany: vi.fn(
      (keys: string[]) =>
        new Promise<Map<string, StoredEntry>>((answer, fail) => {
          calls.push({ keys, answer, fail });
        }),
    ),
  } as unknown as Storage;
  return { storage, calls };
}

const guard = (isOpen = false) =>
  ({
    read: (call: (signal: AbortSignal) => unknown) => call(new AbortController().signal),
    isOpen,
  }) as unknown as StoreGuard;

const entry = (version: number, itemIds: string[] = []): StoredEntry => ({
  version,
  json: '"v"',
  expiresAt: null,
  items: itemIds.map((id, i) => ({ id, version: version + i + 1, json: '1' })),
});

/** Starts a read of `key`, lets it reach the store, and returns it with a way to answer it. */
async function reading(loader: Loader, calls: ReturnType<typeof heldStore>['calls'], key: string) {
  const result = loader.load(key);
  await vi.waitFor(() => expect(calls.some((c) => c.keys.includes(key))).toBe(true));
  const call = calls.find((c) => c.keys.includes(key)) as (typeof calls)[number];
  return { result, answer: (stored?: StoredEntry) => call.answer(new Map(stored ? [[key, stored]] : [])) };
}

describe('Loader', () => {
  it('reads a key once however many callers miss it, and batches the misses of one tick', async () => {
    const { storage, calls } = heldStore();
    const onRead = vi.fn();
    const loader = new Loader(storage, guard(), 2, onRead);
    const first = loader.load('a');
    expect(loader.load('a')).toBe(first);
    const others = [loader.load('b'), loader.load('c')];
    await vi.waitFor(() => expect(calls).toHaveLength(2));
    expect(calls.map((c) => c.keys)).toEqual([['a', 'b'], ['c']]);
    expect(onRead.mock.calls).toEqual([[2], [1]]);
    calls[0]?.answer(new Map([['a', entry(5)]]));
    calls[1]?.answer(new Map());
    expect(await first).toEqual({ stored: entry(5), writtenDuringRead: false, outdated: false });
    expect((await others[1])?.stored).toBeUndefined();
  });

  it('marks an answer outdated by a value change announced during the read that it does not show', async () => {
    for (const [announced, outdated] of [
      [6, true],
      [5, false],
      [4, false],
    ] as const) {
      const { storage, calls } = heldStore();
      const loader = new Loader(storage, guard(), 10, () => {});
      const { result, answer } = await reading(loader, calls, 'k');
      loader.noteChange({ key: 'k', version: announced });
      answer(entry(5));
      expect((await result).outdated).toBe(outdated);
    }
  });

  it('marks an answer outdated by an announced item it does not hold, and by any change to a key it found absent', async () => {
    for (const [stored, itemId, outdated] of [
      [entry(5, ['x']), 'x', false],
      [entry(5, ['x']), 'y', true],
      [entry(5), 'x', true],
      [undefined, 'x', true],
      [undefined, undefined, true],
    ] as const) {
      const { storage, calls } = heldStore();
      const loader = new Loader(storage, guard(), 10, () => {});
      const { result, answer } = await reading(loader, calls, 'k');
      loader.noteChange({ key: 'k', version: 9, ...(itemId ? { itemId } : {}) });
      answer(stored);
      expect((await result).outdated).toBe(outdated);
    }
  });

  it('weighs every change announced during a read, not only the first', async () => {
    const { storage, calls } = heldStore();
    const loader = new Loader(storage, guard(), 10, () => {});
    const { result, answer } = await reading(loader, calls, 'k');
    loader.noteChange({ key: 'k', version: 3 });
    loader.noteChange({ key: 'k', version: 8 });
    answer(entry(5));
    expect((await result).outdated).toBe(true);
  });

  it('ignores changes to keys no read is fetching, and forgets a read’s changes once it is answered', async () => {
    const { storage, calls } = heldStore();
    const loader = new Loader(storage, guard(), 10, () => {});
    loader.noteChange({ key: 'k', version: 9 });
    loader.noteReset();
    const first = await reading(loader, calls, 'k');
    loader.noteChange({ key: 'k', version: 7 });
    first.answer(entry(5));
    expect((await first.result).outdated).toBe(true);
    const again = loader.load('k');
    await vi.waitFor(() => expect(calls).toHaveLength(2));
    calls[1]?.answer(new Map([['k', entry(7)]]));
    expect((await again).outdated).toBe(false);
  });

  it('after a reset, keeps no answer of a read that was in flight, whatever is announced next', async () => {
    const { storage, calls } = heldStore();
    const loader = new Loader(storage, guard(), 10, () => {});
    const { result, answer } = await reading(loader, calls, 'k');
    loader.noteReset();
    loader.noteChange({ key: 'k', version: 1, itemId: 'held' });
    answer(entry(5, ['held']));
    expect((await result).outdated).toBe(true);
  });

  it('keeps nothing a read brings before the feed has a place to follow from, and keeps it once it has', async () => {
    for (const [placed, outdated] of [
      [false, true],
      [true, false],
    ] as const) {
      const { storage, calls } = heldStore();
      const loader = new Loader(
        storage,
        guard(),
        10,
        () => {},
        async () => placed,
      );
      const { result, answer } = await reading(loader, calls, 'k');
      answer(entry(5));
      expect((await result).outdated).toBe(outdated);
    }
  });

  it('says a local write landed during the read only when the answer is older than it', async () => {
    for (const [written, expected] of [
      [6, true],
      [5, false],
    ] as const) {
      const { storage, calls } = heldStore();
      const loader = new Loader(storage, guard(), 10, () => {});
      loader.noteWrite('k', 100); // before the read: not during it
      const { result, answer } = await reading(loader, calls, 'k');
      loader.noteWrite('k', written);
      loader.noteWrite('k', 1);
      answer(entry(5));
      expect((await result).writtenDuringRead).toBe(expected);
    }
  });

  it('rejects every caller of a failed read with StorageUnavailableError, naming why', async () => {
    for (const [open, message] of [
      [false, 'the store could not be read: boom'],
      [true, 'the store is unreachable (circuit breaker open) and the key is not in memory'],
    ] as const) {
      const { storage, calls } = heldStore();
      const loader = new Loader(storage, guard(open), 10, () => {});
      const reads = [loader.load('a'), loader.load('b')];
      await vi.waitFor(() => expect(calls).toHaveLength(1));
      calls[0]?.fail(new Error('boom'));
      for (const read of reads) {
        const error = await read.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StorageUnavailableError);
        expect((error as Error).message).toBe(message);
      }
      // The failed read leaves nothing behind: the next miss reads again.
      const next = loader.load('a');
      await vi.waitFor(() => expect(calls).toHaveLength(2));
      calls[1]?.answer(new Map());
      expect((await next).stored).toBeUndefined();
    }
  });
});
