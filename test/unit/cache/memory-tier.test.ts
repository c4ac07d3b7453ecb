import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ENTRY_OVERHEAD_BYTES, entryBytes, entryFromStored, entryJson } from '../../../src/cache/entry.js';
import { MemoryTier, MISS } from '../../../src/cache/memory-tier.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function tier(maxEntries = 100, maxBytes = 1_000_000) {
  const onEvict = vi.fn();
  return { tier: new MemoryTier({ maxEntries, maxBytes, onEvict }), onEvict };
}

const value = (key: string, version: number, v: unknown, expiresAt: number | null = null) =>
  entryFromStored(key, { version, json: JSON.stringify(v), expiresAt });
const tombstone = (key: string, version: number) =>
  entryFromStored(key, { version, json: null, expiresAt: null });
const stored = (version: number, v: unknown, expiresAt: number | null = null) => ({
  version,
  json: JSON.stringify(v),
  expiresAt,
});

describe('entryBytes', () => {
  it('counts the value, the key and a fixed overhead', () => {
    expect(entryBytes('abc', 10)).toBe(10 + 3 + ENTRY_OVERHEAD_BYTES);
    expect(entryBytes('a-longer-key', 0)).toBe(12 + ENTRY_OVERHEAD_BYTES);
  });
});

describe('accounting', () => {
  it('pendingBytes follows dirty entries through overwrite, settle and discard', () => {
    const { tier: t } = tier();
    const big = value('k', 1, 'x'.repeat(100));
    const small = value('k', 2, 'y');
    t.putDirty('k', big, 0);
    expect(t.pendingBytes).toBe(big.bytes);
    t.putDirty('k', small, 0);
    expect(t.pendingBytes).toBe(small.bytes);
    const other = value('o', 3, 'z'.repeat(10));
    t.putDirty('o', other, 0);
    expect(t.pendingBytes).toBe(small.bytes + other.bytes);
    expect(t.pendingBytesOf('k')).toBe(small.bytes);
    t.markFlushed('k', 2);
    expect(t.pendingBytes).toBe(other.bytes);
    t.discard('o', 3);
    expect(t.pendingBytes).toBe(0);
  });

  it('cleanBytes and cleanEntries count only clean entries', () => {
    const { tier: t } = tier();
    const loaded = value('a', 1, 'aaaa');
    t.putLoaded('a', stored(1, 'aaaa'));
    t.putDirty('b', value('b', 2, 'bbbbbbbb'), 0);
    expect(t.cleanEntries).toBe(1);
    expect(t.cleanBytes).toBe(loaded.bytes);
    t.markFlushed('b', 2);
    expect(t.cleanEntries).toBe(2);
    expect(t.cleanBytes).toBe(loaded.bytes + value('b', 2, 'bbbbbbbb').bytes);
  });

  it('calls onEvict only when the LRU evicts for room, not on overwrite, delete or expiry', () => {
    const { tier: t, onEvict } = tier(2);
    t.putLoaded('a', stored(1, 'a1'));
    t.putLoaded('a', stored(2, 'a2')); // overwrite
    t.putLoaded('b', stored(3, 'b', Date.now() + 10));
    t.putDirty('a', value('a', 4, 'a4'), 0); // removes the clean copy
    vi.advanceTimersByTime(10);
    expect(t.lookup('b')).toBe(MISS); // expired, dropped
    expect(onEvict).not.toHaveBeenCalled();
    t.putLoaded('c', stored(5, 'c'));
    t.putLoaded('d', stored(6, 'd'));
    t.putLoaded('e', stored(7, 'e'));
    expect(onEvict).toHaveBeenCalledTimes(1);
    expect(t.cleanEntries).toBe(2);
  });
});

describe('lookup', () => {
  it('answers a dirty tombstone and an expired dirty entry as absent, without asking the store', () => {
    const { tier: t } = tier();
    t.putDirty('gone', tombstone('gone', 1), 0);
    t.putDirty('old', value('old', 2, 'v', Date.now() + 5), 0);
    expect(t.lookup('gone')).toBeUndefined();
    expect(t.lookup('old')).toBe('v');
    vi.advanceTimersByTime(5);
    expect(t.lookup('old')).toBeUndefined();
  });

  it('answers a clean tombstone as absent and an expired clean entry as a miss', () => {
    const { tier: t } = tier();
    t.putLoaded('gone', { version: 1, json: null, expiresAt: null });
    t.putLoaded('old', stored(2, 'v', Date.now() + 5));
    expect(t.lookup('gone')).toBeUndefined();
    expect(t.lookup('unknown')).toBe(MISS);
    vi.advanceTimersByTime(5);
    expect(t.lookup('old')).toBe(MISS);
  });

  it('keeps the serialized form of a dirty entry after a read, so the flush sends what was written', () => {
    const { tier: t } = tier();
    t.putDirty('k', value('k', 1, { n: 1 }), 0);
    const read = t.lookup('k') as { n: number };
    read.n = 2; // a caller mutating what it read
    expect(entryJson(t.dirty.get('k') as never)).toBe('{"n":1}');
  });
});

describe('putDirty', () => {
  it('refuses a version not newer than the dirty one, and leaves it in place', () => {
    const { tier: t } = tier();
    t.putDirty('k', value('k', 5, 'five'), 0);
    const current = t.dirty.get('k');
    expect(t.putDirty('k', value('k', 5, 'same version'), 0)).toEqual({ replaced: current, accepted: false });
    expect(t.putDirty('k', value('k', 4, 'older'), 0)).toEqual({ replaced: current, accepted: false });
    expect(t.lookup('k')).toBe('five');
    const newer = t.putDirty('k', value('k', 6, 'six'), 0);
    expect(newer).toEqual({ replaced: current, accepted: true });
    expect(t.lookup('k')).toBe('six');
  });

  it('refuses a version not newer than the clean one memory holds', () => {
    const { tier: t } = tier();
    t.putLoaded('k', stored(5, 'five'));
    expect(t.putDirty('k', value('k', 5, 'same version'), 0)).toEqual({
      replaced: undefined,
      accepted: false,
    });
    expect(t.putDirty('k', value('k', 3, 'older'), 0)).toEqual({ replaced: undefined, accepted: false });
    expect(t.dirty.size).toBe(0);
    expect(t.pendingBytes).toBe(0);
    expect(t.lookup('k')).toBe('five');
    expect(t.putDirty('k', value('k', 6, 'six'), 0).accepted).toBe(true);
    expect(t.lookup('k')).toBe('six');
  });

  it('keeps the time the key first became dirty across overwrites', () => {
    const { tier: t } = tier();
    t.putDirty('k', value('k', 1, 'a'), 100);
    t.putDirty('k', value('k', 2, 'b'), 200);
    expect(t.dirty.get('k')?.since).toBe(100);
  });
});

describe('settle and discard', () => {
  it('settle moves only the matching version to the clean LRU', () => {
    const { tier: t } = tier();
    t.putDirty('k', value('k', 2, 'two'), 0);
    expect(t.markFlushed('k', 1)).toBe(false);
    expect(t.markFlushed('absent', 1)).toBe(false);
    expect(t.dirty.has('k')).toBe(true);
    expect(t.markFlushed('k', 2)).toBe(true);
    expect(t.dirty.has('k')).toBe(false);
    expect(t.cleanEntries).toBe(1);
    expect(t.lookup('k')).toBe('two');
  });

  it('discard forgets only the matching version', () => {
    const { tier: t } = tier();
    t.putDirty('k', value('k', 2, 'two'), 0);
    expect(t.discard('k', 1)).toBe(false);
    expect(t.discard('absent', 1)).toBe(false);
    expect(t.lookup('k')).toBe('two');
    expect(t.pendingBytes).toBe(value('k', 2, 'two').bytes);
    expect(t.discard('k', 2)).toBe(true);
    expect(t.dirty.has('k')).toBe(false);
    expect(t.pendingBytes).toBe(0);
    expect(t.lookup('k')).toBe(MISS);
  });
});

describe('putLoaded', () => {
  it('caches a store read only when it is newer than what memory holds', () => {
    const { tier: t } = tier();
    t.putLoaded('k', stored(5, 'five'));
    expect(t.lookup('k')).toBe('five');
    t.putLoaded('k', stored(3, 'older'));
    expect(t.lookup('k')).toBe('five');
    t.putLoaded('k', stored(5, 'same version'));
    expect(t.lookup('k')).toBe('five');
    t.putLoaded('k', stored(7, 'seven'));
    expect(t.lookup('k')).toBe('seven');
  });

  it('does not cache a store read for a key with an unflushed write', () => {
    const { tier: t } = tier();
    t.putDirty('k', value('k', 2, 'mine'), 0);
    t.putLoaded('k', stored(9, 'theirs'));
    expect(t.cleanEntries).toBe(0);
    expect(t.lookup('k')).toBe('mine');
  });
});
