import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { entryBytes, entryFromOutbox, serializedEntry } from '../../../src/cache/entry.js';
import { CorruptValueError } from '../../../src/cache/errors.js';
import { MemoryTier, MISS } from '../../../src/cache/memory-tier.js';
import type { LogItem } from '../../../src/storage/contract/types.js';

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(1_000);
});
afterEach(() => {
  vi.useRealTimers();
});

const newTier = (effectiveFloor?: (logFloor: number) => number) =>
  new MemoryTier({
    maxEntries: 100,
    maxBytes: 1_000_000,
    onEvict: () => {},
    ...(effectiveFloor ? { effectiveFloor } : {}),
  });

const item = (version: number, id = `i${version}`): LogItem => ({
  id,
  version,
  json: JSON.stringify({ n: version }),
});

/** A value written here: its stored log is unknown unless given. */
const value = (key: string, version: number, v: unknown, expiresAt: number | null = null) => {
  const json = v === undefined ? null : JSON.stringify(v);
  return serializedEntry(version, json, expiresAt, entryBytes(key, json?.length ?? 0));
};

const stored = (version: number, v: unknown, items: LogItem[], expiresAt: number | null = null) => ({
  version,
  json: v === undefined ? null : JSON.stringify(v),
  expiresAt,
  items,
});

/** `read` throws a CorruptValueError for `key`, caused by the JSON parser. */
function expectCorrupt(read: () => unknown, key: string): void {
  let thrown: unknown;
  try {
    read();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(CorruptValueError);
  expect((thrown as CorruptValueError).key).toBe(key);
  expect((thrown as CorruptValueError).cause).toBeInstanceOf(SyntaxError);
}

describe('appendItem order', () => {
  it('keeps unflushed items in (version, id) order whatever order they arrive in', () => {
    const t = newTier();
    t.appendItem('k', item(10), null, 50, 1_000);
    t.appendItem('k', item(5), null, 50, 1_000);
    t.appendItem('k', item(12, 'b'), null, 50, 1_000);
    t.appendItem('k', item(12, 'a'), null, 50, 1_000);
    expect(t.pendingLogs.get('k')?.items.map((i) => [i.version, i.id])).toEqual([
      [5, 'i5'],
      [10, 'i10'],
      [12, 'a'],
      [12, 'b'],
    ]);
  });
});

describe('appendItem and expiry', () => {
  it("raises a live dirty value's expiry to the item's", () => {
    const t = newTier();
    t.putDirty('k', value('k', 5, 'v', 2_000), 1_000);
    t.appendItem('k', item(6), 5_000, 50, 1_500);
    vi.setSystemTime(3_000);
    expect(t.lookup('k')).toBe('v');
    vi.setSystemTime(5_000);
    expect(t.lookup('k')).toBeUndefined();
  });

  it("raises a live clean value's expiry to the item's", () => {
    const t = newTier();
    t.putLoaded('k', stored(5, 'v', [], 2_000));
    t.appendItem('k', item(6), null, 50, 1_500);
    vi.setSystemTime(100_000);
    expect(t.lookup('k')).toBe('v');
  });

  it('never brings back a value that had expired when the item was appended', () => {
    const t = newTier();
    t.putDirty('k', value('k', 5, 'v', 2_000), 1_000);
    // Appended exactly when the value expired: it was no longer live.
    t.appendItem('k', item(6), 9_000, 50, 2_000);
    vi.setSystemTime(2_500);
    expect(t.lookup('k')).toBeUndefined();
  });

  it('leaves the expiry of a value as new as the item, or newer, alone', () => {
    const t = newTier();
    t.putDirty('newer', value('newer', 20, 'v', 2_000), 1_000);
    t.putDirty('same', value('same', 20, 'v', 2_000), 1_000);
    t.appendItem('newer', item(10), null, 50, 1_500);
    t.appendItem('same', item(20), null, 50, 1_500);
    vi.setSystemTime(2_500);
    expect(t.lookup('newer')).toBeUndefined();
    expect(t.lookup('same')).toBeUndefined();
  });
});

describe('putDirty and the key log', () => {
  it("a value written over a live value keeps the key's stored and unflushed items", () => {
    const t = newTier();
    t.putLoaded('k', stored(5, 'old', [item(3)]));
    t.appendItem('k', item(10), null, 50, 1_000);
    t.putDirty('k', value('k', 12, 'new'), 1_000);
    expect(t.pendingLogs.get('k')?.items).toEqual([item(10)]);
    expect(t.lookupWithLog('k')).toEqual({ value: 'new', items: [{ n: 3 }, { n: 10 }] });
  });

  it('a value written over an expired value starts an empty log and drops the older unflushed items', () => {
    const t = newTier();
    t.putLoaded('k', stored(5, 'old', [item(3)], 2_000));
    t.appendItem('k', item(6), 2_500, 50, 1_500);
    vi.setSystemTime(2_200);
    expect(t.lookup('k')).toBe('old'); // the append raised the expiry to 2_500
    vi.setSystemTime(3_000);
    const entry = value('k', 10, 'new');
    t.putDirty('k', entry, 3_000);
    expect(t.pendingLogs.has('k')).toBe(false);
    expect(t.pendingBytes).toBe(entry.bytes);
    expect(t.lookupWithLog('k')).toEqual({ value: 'new', items: [] });
  });

  it('a value written over a clean tombstone starts an empty log', () => {
    const t = newTier();
    t.putLoaded('k', stored(5, undefined, []));
    t.putDirty('k', value('k', 10, 'new'), 1_000);
    expect(t.lookupWithLog('k')).toEqual({ value: 'new', items: [] });
  });

  it('a value written over an unflushed delete ends the older items at its own version - 1', () => {
    const t = newTier();
    t.putDirty('k', value('k', 20, undefined), 1_000);
    t.putDirty('k', value('k', 25, 'back'), 1_000);
    expect(t.dirty.get('k')?.logFloor).toBe(24);
    expect(t.lookupWithLog('k')).toEqual({ value: 'back', items: [] });
    // A later value coalesced over it still has to end them.
    t.putDirty('k', value('k', 27, 'again'), 1_000);
    expect(t.dirty.get('k')?.logFloor).toBe(24);
  });

  it('a value written over an unflushed value that expired here ends the older items', () => {
    const t = newTier();
    t.putDirty('k', value('k', 10, 'v', 2_000), 1_000);
    vi.setSystemTime(2_500);
    t.putDirty('k', value('k', 12, 'w'), 2_500);
    expect(t.dirty.get('k')?.logFloor).toBe(11);
  });

  it('a value written over a live unflushed value ends nothing', () => {
    const t = newTier();
    t.putDirty('k', value('k', 10, 'v'), 1_000);
    t.putDirty('k', value('k', 12, 'w'), 1_000);
    expect(t.dirty.get('k')?.logFloor).toBe(0);
  });
});

describe('learning the stored log of an unflushed value', () => {
  it("hides the stored items a replayed value's log floor covers", () => {
    const t = newTier();
    t.putDirty(
      'k',
      entryFromOutbox('k', { version: 25, json: '"back"', expiresAt: null, logFloor: 24 }),
      1_000,
    );
    expect(t.lookupWithLog('k')).toBe(MISS);
    t.putLoaded('k', stored(20, 'old', [item(23), item(24), item(26)]));
    expect(t.lookupWithLog('k')).toEqual({ value: 'back', items: [{ n: 26 }] });
  });

  it('hides the stored items up to where the end will be once the value is sent', () => {
    const t = newTier((logFloor) => logFloor + 3);
    t.putDirty(
      'k',
      entryFromOutbox('k', { version: 25, json: '"back"', expiresAt: null, logFloor: 24 }),
      1_000,
    );
    t.putLoaded('k', stored(20, 'old', [item(26), item(27), item(28)]));
    expect(t.lookupWithLog('k')).toEqual({ value: 'back', items: [{ n: 28 }] });
  });

  it('hides the items of a stored value that had expired when the unflushed value was written, though it reads live now', () => {
    const t = newTier();
    // Written at 1_000 over a value the store holds that expired at 900 (memory never read it).
    t.putDirty('k', value('k', 30, 'new'), 1_000);
    vi.setSystemTime(800); // the wall clock stepped back: the store reads the old value as live
    t.putLoaded('k', stored(20, 'old', [item(21), item(31)], 900));
    // As the store will judge it at writtenAt 1_000: the new log starts with the value at 30.
    expect(t.lookupWithLog('k')).toEqual({ value: 'new', items: [{ n: 31 }] });
  });

  it('judges the stored value with the refresh of the items sent before the unflushed value', () => {
    const t = newTier();
    // Appended at 850 to the stored value (not in memory), asking for expiry 2_000.
    t.appendItem('k', item(25), 2_000, 50, 850);
    t.putDirty('k', value('k', 30, 'new'), 1_000);
    vi.setSystemTime(800);
    // Expiring at 900 as stored, but at 2_000 once the item reaches it, before the value does.
    t.putLoaded('k', stored(20, 'old', [item(21)], 900));
    expect(t.lookupWithLog('k')).toEqual({ value: 'new', items: [{ n: 21 }, { n: 25 }] });
  });

  it('keeps the items of a stored value that was live when the unflushed value was written', () => {
    const t = newTier();
    t.putDirty('k', value('k', 30, 'new'), 1_000);
    t.putLoaded('k', stored(20, 'old', [item(21)], 1_001));
    expect(t.lookupWithLog('k')).toEqual({ value: 'new', items: [{ n: 21 }] });
  });

  it('a stored tombstone gives an unflushed value an empty log, whatever items came with it', () => {
    const t = newTier();
    t.putDirty('k', value('k', 10, 'v'), 1_000);
    t.putLoaded('k', stored(4, undefined, [item(2)]));
    expect(t.lookupWithLog('k')).toEqual({ value: 'v', items: [] });
  });

  it('a key the store does not hold gives an unflushed value an empty log', () => {
    const t = newTier();
    t.putDirty('k', value('k', 10, 'v'), 1_000);
    t.learnAbsent('k');
    expect(t.lookupWithLog('k')).toEqual({ value: 'v', items: [] });
  });

  it('keeps the items the store took while the log was unknown, across a later value, once the log is learnt', () => {
    const t = newTier();
    t.putDirty('k', value('k', 5, 'a'), 1_000);
    t.appendItem('k', item(6), null, 50, 1_000);
    t.dropItemsUpTo('k', 6, true);
    expect(t.lookupWithLog('k')).toBe(MISS);
    t.putDirty('k', value('k', 7, 'b'), 1_000);
    // The store read does not show the settled item yet (the value is still on its way).
    t.putLoaded('k', stored(3, 'old', [item(2)]));
    expect(t.lookupWithLog('k')).toEqual({ value: 'b', items: [{ n: 2 }, { n: 6 }] });
  });

  it("settled items join an unflushed value's known log", () => {
    const t = newTier();
    t.putLoaded('k', stored(3, 'old', [item(2)]));
    t.putDirty('k', value('k', 5, 'a'), 1_000);
    t.appendItem('k', item(6), null, 50, 1_000);
    t.dropItemsUpTo('k', 6, true);
    expect(t.dirty.get('k')?.log?.map((i) => i.version)).toEqual([2, 6]);
  });

  it("keeps an unflushed value's known log over a stale store read", () => {
    const t = newTier();
    t.putLoaded('k', stored(5, 'a', [item(3)]));
    t.putDirty('k', value('k', 7, 'b'), 1_000);
    t.putLoaded('k', stored(5, 'a', []));
    expect(t.lookupWithLog('k')).toEqual({ value: 'b', items: [{ n: 3 }] });
  });

  it("keeps a clean value's known log over a read of the same version", () => {
    const t = newTier();
    t.putLoaded('k', stored(5, 'a', [item(3)]));
    t.putLoaded('k', stored(5, 'a', []));
    expect(t.lookupWithLog('k')).toEqual({ value: 'a', items: [{ n: 3 }] });
  });
});

describe('lookupWithLog', () => {
  it('answers a deleted key as absent', () => {
    const t = newTier();
    t.putDirty('dirty', value('dirty', 5, undefined), 1_000);
    t.putLoaded('clean', stored(5, undefined, []));
    expect(t.lookupWithLog('dirty')).toBeUndefined();
    expect(t.lookupWithLog('clean')).toBeUndefined();
    expect(t.lookupWithLog('unknown')).toBe(MISS);
  });

  it('after a read, memory keeps only the parsed value of each stored item, counted by its JSON', () => {
    const t = newTier();
    t.putLoaded('k', stored(5, 'a', [item(3), item(4)]));
    t.putDirty('k', value('k', 7, 'b'), 1_000);
    expect(t.lookupWithLog('k')).toEqual({ value: 'b', items: [{ n: 3 }, { n: 4 }] });
    expect(t.dirty.get('k')?.log).toEqual([
      { id: 'i3', version: 3, json: '', value: { n: 3 }, jsonBytes: 7 },
      { id: 'i4', version: 4, json: '', value: { n: 4 }, jsonBytes: 7 },
    ]);
    // Read again: the same values.
    expect(t.lookupWithLog('k')).toEqual({ value: 'b', items: [{ n: 3 }, { n: 4 }] });
  });

  it('parses each unflushed item once while memory holds it', () => {
    const t = newTier();
    t.putLoaded('k', stored(5, 'a', []));
    t.appendItem('k', item(6), null, 50, 1_000);
    const first = t.lookupWithLog('k') as { items: unknown[] };
    const second = t.lookupWithLog('k') as { items: unknown[] };
    expect(first.items[0]).toEqual({ n: 6 });
    expect(second.items[0]).toBe(first.items[0]);
  });

  it('throws CorruptValueError for a stored item that is not valid JSON, and forgets the key', () => {
    const t = newTier();
    t.putLoaded('k', stored(5, 'a', [{ id: 'bad', version: 3, json: '{oops' }]));
    expectCorrupt(() => t.lookupWithLog('k'), 'k');
    expect(t.lookup('k')).toBe(MISS);
  });
});

describe('itemValues and withPendingItems', () => {
  it('parses an item once while memory holds it', () => {
    const t = newTier();
    const items = [item(1)];
    const [first] = t.itemValues(items);
    const [second] = t.itemValues(items);
    expect(first).toEqual({ n: 1 });
    expect(second).toBe(first);
  });

  it("merges items read from the store with the key's unflushed ones", () => {
    const t = newTier();
    t.appendItem('k', item(5), null, 50, 1_000);
    t.appendItem('k', item(9), null, 50, 1_000);
    expect(t.withPendingItems('k', [item(7), item(9)]).map((i) => i.version)).toEqual([5, 7, 9]);
    const storedItems = [item(1)];
    const alone = t.withPendingItems('other', storedItems);
    expect(alone).toEqual(storedItems);
    expect(alone).not.toBe(storedItems);
  });
});

describe('corrupt values', () => {
  it('throws CorruptValueError for an unflushed value that is not valid JSON, and keeps it', () => {
    const t = newTier();
    t.putDirty('k', serializedEntry(5, '{oops', null, 70), 1_000);
    expectCorrupt(() => t.lookup('k'), 'k');
    expect(t.dirty.has('k')).toBe(true);
  });

  it('throws CorruptValueError for a stored value that is not valid JSON, and forgets it', () => {
    const t = newTier();
    t.putLoaded('k', { version: 5, json: '{oops', expiresAt: null });
    expectCorrupt(() => t.lookup('k'), 'k');
    expect(t.lookup('k')).toBe(MISS);
    expect(t.cleanEntries).toBe(0);
  });
});

describe('reversion and knownVersion', () => {
  it('re-mints only the matching unflushed version, and moves its log floor only when given', () => {
    const t = newTier();
    t.putDirty('k', value('k', 5, 'v'), 1_000);
    expect(t.changeVersion('absent', 5, 6)).toBe(false);
    expect(t.changeVersion('k', 4, 6)).toBe(false);
    expect(t.knownVersion('k')).toBe(5);
    expect(t.changeVersion('k', 5, 8)).toBe(true);
    expect(t.knownVersion('k')).toBe(8);
    expect(t.dirty.get('k')?.logFloor).toBe(0);
    expect(t.changeVersion('k', 8, 9, 8)).toBe(true);
    expect(t.dirty.get('k')).toMatchObject({ version: 9, logFloor: 8 });
  });

  it('knows the version of an unflushed or a clean entry, and not of an unknown key', () => {
    const t = newTier();
    t.putDirty('dirty', value('dirty', 5, 'v'), 1_000);
    t.putLoaded('clean', stored(3, 'c', []));
    expect(t.knownVersion('dirty')).toBe(5);
    expect(t.knownVersion('clean')).toBe(3);
    expect(t.knownVersion('unknown')).toBeUndefined();
  });
});
