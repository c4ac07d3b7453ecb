import { describe, expect, it } from 'vitest';
import {
  entryBytes,
  entryFromOutbox,
  ITEM_OVERHEAD_BYTES,
  isParsed,
  logBytes,
  mergeItems,
  parsedItem,
  readValue,
  serializedEntry,
} from '../../../src/cache/entry.js';
import type { LogItem } from '../../../src/storage/contract/types.js';

const item = (version: number, id = `i${version}`): LogItem => ({
  id,
  version,
  json: JSON.stringify({ n: version, id }),
});

describe('logBytes', () => {
  it('counts each item by its JSON, its id and a fixed overhead, and an unknown log as nothing', () => {
    expect(logBytes(undefined)).toBe(0);
    expect(logBytes([])).toBe(0);
    const log = [
      { id: 'abc', version: 1, json: '12345' },
      { id: 'z', version: 2, json: '1' },
    ];
    expect(logBytes(log)).toBe(5 + 3 + ITEM_OVERHEAD_BYTES + (1 + 1 + ITEM_OVERHEAD_BYTES));
  });

  it('counts a held item by the JSON it came from, not by its emptied JSON', () => {
    const held = parsedItem({ id: 'abc', version: 1, json: '"hello"' }, 'hello');
    expect(logBytes([held])).toBe(7 + 3 + ITEM_OVERHEAD_BYTES);
  });
});

describe('parsedItem', () => {
  it('keeps the parsed value and the size of the JSON, and drops the JSON itself', () => {
    const held = parsedItem({ id: 'abc', version: 4, json: '{"a":1}' }, { a: 1 });
    expect(held).toEqual({ id: 'abc', version: 4, json: '', value: { a: 1 }, jsonBytes: 7 });
    expect(isParsed(held)).toBe(true);
    expect(isParsed({ id: 'abc', version: 4, json: '{"a":1}' })).toBe(false);
  });

  it('holding a held item again keeps the size of the original JSON', () => {
    const held = parsedItem({ id: 'abc', version: 4, json: '{"a":1}' }, { a: 1 });
    expect(parsedItem(held, { a: 1 }).jsonBytes).toBe(7);
  });
});

describe('entryFromOutbox', () => {
  it("keeps a replayed value's log floor, and its log is unknown", () => {
    const entry = entryFromOutbox('k', { version: 25, json: '"v"', expiresAt: 9_000, logFloor: 24 });
    expect(entry).toMatchObject({ version: 25, expiresAt: 9_000, deleted: false, logFloor: 24 });
    expect(entry.log).toBeUndefined();
    expect(entry.bytes).toBe(entryBytes('k', 3));
  });

  it('a replayed value without a log floor ends none', () => {
    expect(entryFromOutbox('k', { version: 25, json: '"v"', expiresAt: null }).logFloor).toBe(0);
  });

  it('a replayed tombstone never carries a log floor (it ends them all)', () => {
    const entry = entryFromOutbox('k', { version: 25, json: null, expiresAt: null, logFloor: 24 });
    expect(entry.deleted).toBe(true);
    expect(entry.logFloor).toBe(0);
    expect(entry.log).toEqual([]);
  });
});

describe('mergeItems', () => {
  it('interleaves two ordered lists by version', () => {
    const a = [item(1), item(3), item(5)];
    const b = [item(2), item(4), item(6), item(7)];
    expect(mergeItems(a, b).map((i) => i.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(mergeItems(b, a).map((i) => i.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('orders items of the same version by id', () => {
    const merged = mergeItems([item(3, 'b'), item(3, 'd')], [item(3, 'a'), item(3, 'c')]);
    expect(merged.map((i) => i.id)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('keeps an item found in both lists once, as the first list holds it', () => {
    const plain = item(2, 'x');
    const held = parsedItem(plain, { n: 2 });
    const merged = mergeItems([held, item(4)], [item(1), plain, item(3)]);
    expect(merged.map((i) => i.version)).toEqual([1, 2, 3, 4]);
    expect(merged[1]).toBe(held);
  });

  it('returns a new array when either list is empty, so the caller can change it freely', () => {
    const a = [item(1), item(2)];
    const fromA = mergeItems(a, []);
    const fromB = mergeItems([], a);
    expect(fromA).toEqual(a);
    expect(fromB).toEqual(a);
    expect(fromA).not.toBe(a);
    expect(fromB).not.toBe(a);
  });
});

describe('readValue', () => {
  it('parses once; a clean read drops the JSON, a dirty read keeps it for the flush', () => {
    const clean = serializedEntry(1, '{"a":1}', null, 10);
    const value = readValue(clean, true);
    expect(value).toEqual({ a: 1 });
    expect(clean.json).toBeUndefined();
    expect(readValue(clean, true)).toBe(value);

    const dirty = serializedEntry(2, '{"a":2}', null, 10);
    expect(readValue(dirty, false)).toEqual({ a: 2 });
    expect(dirty.json).toBe('{"a":2}');
  });
});
