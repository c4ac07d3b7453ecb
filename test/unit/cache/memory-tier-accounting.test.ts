import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { entryBytes, entryFromStored, logBytes, serializedEntry } from '../../../src/cache/entry.js';
import { MemoryTier } from '../../../src/cache/memory-tier.js';
import type { LogItem } from '../../../src/storage/contract/types.js';

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(1_000);
});
afterEach(() => {
  vi.useRealTimers();
});

const newTier = () => new MemoryTier({ maxEntries: 100, maxBytes: 1_000_000, onEvict: () => {} });

const item = (version: number, id = `i${version}`): LogItem => ({
  id,
  version,
  json: JSON.stringify({ n: version }),
});

const value = (key: string, version: number, v: unknown) => {
  const json = v === undefined ? null : JSON.stringify(v);
  return serializedEntry(version, json, null, entryBytes(key, json?.length ?? 0));
};

describe('pending items accounting', () => {
  it('counts appended items in pendingBytes and in their key until the store takes them', () => {
    const t = newTier();
    const first = item(10);
    const second = item(12);
    t.appendItem('k', first, null, 100, 1_000);
    t.appendItem('k', second, null, 100, 1_000);
    expect(t.pendingBytes).toBe(200);
    expect(t.pendingLogs.get('k')?.bytes).toBe(200);
    expect(t.hasPending('k')).toBe(true);

    t.dropItemsUpTo('k', 10, true);
    expect(t.pendingLogs.get('k')?.items).toEqual([second]);
    expect(t.pendingLogs.get('k')?.bytes).toBe(200 - logBytes([first]));
    expect(t.pendingBytes).toBe(200 - logBytes([first]));

    // The last item gone, whatever its key still counted (appends were counted by the caller) goes too.
    t.dropItemsUpTo('k', 12, true);
    expect(t.pendingLogs.has('k')).toBe(false);
    expect(t.hasPending('k')).toBe(false);
    expect(t.pendingBytes).toBe(0);
  });

  it('settling items refused for good frees their bytes too', () => {
    const t = newTier();
    t.appendItem('k', item(10), null, 70, 1_000);
    t.appendItem('other', item(11), null, 30, 1_000);
    t.dropItemsUpTo('k', 10, false);
    expect(t.pendingLogs.has('k')).toBe(false);
    expect(t.pendingBytes).toBe(30);
  });

  it('settling a key with nothing pending, or only newer items, changes nothing', () => {
    const t = newTier();
    t.dropItemsUpTo('none', 50, true);
    expect(t.pendingBytes).toBe(0);
    // A clean key whose stored log memory knows: nothing settled, so its log stays as it was.
    t.putLoaded('clean', { version: 5, json: '"v"', expiresAt: null, items: [item(3)] });
    const bytes = t.cleanBytes;
    t.dropItemsUpTo('clean', 50, true);
    expect(t.lookupWithLog('clean')).toEqual({ value: 'v', items: [{ n: 3 }] });
    expect(t.cleanBytes).toBe(bytes);
    t.appendItem('k', item(10), null, 60, 1_000);
    t.dropItemsUpTo('k', 9, true);
    expect(t.pendingLogs.get('k')?.items).toEqual([item(10)]);
    expect(t.pendingBytes).toBe(60);
  });

  it('a delete drops the older unflushed items of its key and their bytes, and keeps newer ones', () => {
    const t = newTier();
    const older = item(10);
    const newer = item(21);
    t.appendItem('k', older, null, 50, 1_000);
    t.appendItem('k', newer, null, 50, 1_000);
    const tombstone = value('k', 20, undefined);
    t.putDirty('k', tombstone, 1_000);
    expect(t.pendingLogs.get('k')?.items).toEqual([newer]);
    expect(t.pendingBytes).toBe(tombstone.bytes + 100 - logBytes([older]));
  });

  it('a delete drops every unflushed item of its key when all are older', () => {
    const t = newTier();
    t.appendItem('k', item(10), null, 50, 1_000);
    t.appendItem('k', item(11), null, 50, 1_000);
    const tombstone = value('k', 20, undefined);
    t.putDirty('k', tombstone, 1_000);
    expect(t.pendingLogs.has('k')).toBe(false);
    expect(t.pendingBytes).toBe(tombstone.bytes);
    expect(t.lookupWithLog('k')).toBeUndefined();
  });
});

describe('clean log accounting', () => {
  it("items the store took join a clean key's known log and count in cleanBytes", () => {
    const t = newTier();
    t.putLoaded('k', { version: 5, json: '"v"', expiresAt: null, items: [item(3)] });
    const before = t.cleanBytes;
    expect(before).toBe(
      entryFromStored('k', { version: 5, json: '"v"', expiresAt: null, items: [item(3)] }).bytes,
    );
    const appended = item(10);
    t.appendItem('k', appended, null, 60, 1_000);
    t.dropItemsUpTo('k', 10, true);
    expect(t.cleanBytes).toBe(before + logBytes([appended]));
    expect(t.lookupWithLog('k')).toEqual({ value: 'v', items: [{ n: 3 }, { n: 10 }] });
  });

  it('an item a store read already brought into the log is counted once', () => {
    const t = newTier();
    const appended = item(10);
    t.appendItem('k', appended, null, 60, 1_000);
    t.putLoaded('k', { version: 5, json: '"v"', expiresAt: null, items: [item(3), appended] });
    const before = t.cleanBytes;
    t.dropItemsUpTo('k', 10, true);
    expect(t.cleanBytes).toBe(before);
    expect(t.lookupWithLog('k')).toEqual({ value: 'v', items: [{ n: 3 }, { n: 10 }] });
  });

  it('items the store refused for good do not join the log', () => {
    const t = newTier();
    t.putLoaded('k', { version: 5, json: '"v"', expiresAt: null, items: [] });
    const before = t.cleanBytes;
    t.appendItem('k', item(10), null, 60, 1_000);
    t.dropItemsUpTo('k', 10, false);
    expect(t.cleanBytes).toBe(before);
    expect(t.lookupWithLog('k')).toEqual({ value: 'v', items: [] });
  });

  it('a settled value with a log learnt from the store counts that log in cleanBytes', () => {
    const t = newTier();
    const entry = value('k', 5, 'v');
    t.putDirty('k', entry, 1_000);
    t.markFlushed('k', 5);
    expect(t.cleanBytes).toBe(entry.bytes);
    const stored = [item(2), item(3)];
    t.putLoaded('k', { version: 5, json: '"v"', expiresAt: null, items: stored });
    expect(t.cleanBytes).toBe(entry.bytes + logBytes(stored));
    expect(t.lookupWithLog('k')).toEqual({ value: 'v', items: [{ n: 2 }, { n: 3 }] });
  });
});
