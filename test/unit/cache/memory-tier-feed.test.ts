import { describe, expect, it, vi } from 'vitest';
import { entryBytes, entryFromStored, serializedEntry } from '../../../src/cache/entry.js';
import { MemoryTier, MISS } from '../../../src/cache/memory-tier.js';
import type { LogItem } from '../../../src/storage/contract/types.js';

const item = (id: string, version: number, v: unknown = id): LogItem => ({
  id,
  version,
  json: JSON.stringify(v),
});

function tier() {
  return new MemoryTier({ maxEntries: 100, maxBytes: 1_000_000, onEvict: vi.fn() });
}

/** A tier holding `k` clean at `version`, with the stored log `items` (unknown log when undefined). */
function withClean(version: number, items?: LogItem[]) {
  const t = tier();
  t.putLoaded('k', { version, json: '"v"', expiresAt: null, ...(items ? { items } : {}) });
  return t;
}

describe('MemoryTier.applyChange (a change the feed announced)', () => {
  it('drops a clean value older than the change, and keeps one as new or newer', () => {
    const t = withClean(10);
    expect(t.applyChange({ key: 'k', version: 10 })).toBe(false);
    expect(t.lookup('k')).toBe('v');
    expect(t.applyChange({ key: 'k', version: 9 })).toBe(false);
    expect(t.lookup('k')).toBe('v');
    expect(t.applyChange({ key: 'k', version: 11 })).toBe(true);
    expect(t.lookup('k')).toBe(MISS);
  });

  it('drops a clean tombstone older than the change (the key was written again elsewhere)', () => {
    const t = tier();
    t.putLoaded('k', { version: 10, json: null, expiresAt: null });
    expect(t.lookup('k')).toBeUndefined();
    expect(t.applyChange({ key: 'k', version: 12 })).toBe(true);
    expect(t.lookup('k')).toBe(MISS);
  });

  it('ignores a change to a key it does not hold', () => {
    expect(tier().applyChange({ key: 'other', version: 99 })).toBe(false);
  });

  it('drops a clean log that lacks an announced item, whatever the item version (clocks differ)', () => {
    const t = withClean(100, [item('a', 50)]);
    expect(t.applyChange({ key: 'k', version: 50, itemId: 'a' })).toBe(false);
    expect(t.lookupWithLog('k')).toEqual({ value: 'v', items: ['a'] });
    expect(t.applyChange({ key: 'k', version: 60, itemId: 'b' })).toBe(true);
    expect(t.lookupWithLog('k')).toBe(MISS);
  });

  it('keeps a clean value whose log it never read: the next log read asks the store anyway', () => {
    const t = tier();
    t.putDirty('k', serializedEntry(100, '"v"', null, entryBytes('k', 3)), 0);
    t.markFlushed('k', 100);
    expect(t.lookupWithLog('k')).toBe(MISS);
    expect(t.applyChange({ key: 'k', version: 120, itemId: 'x' })).toBe(false);
    expect(t.lookup('k')).toBe('v');
  });

  it('knows its own item still waiting to be flushed, and drops nothing for it', () => {
    const t = withClean(100, []);
    const own = item('own', 130);
    t.appendItem('k', own, null, entryBytes('k', own.json.length), 0);
    expect(t.applyChange({ key: 'k', version: 130, itemId: 'own' })).toBe(false);
    expect(t.lookupWithLog('k')).toEqual({ value: 'v', items: ['own'] });
  });

  it('keeps an unflushed value, but makes it read the stored log again after an unknown item', () => {
    const t = withClean(100, [item('a', 50)]);
    t.putDirty('k', serializedEntry(200, '"mine"', null, entryBytes('k', 6)), 0);
    expect(t.lookupWithLog('k')).toEqual({ value: 'mine', items: ['a'] });
    expect(t.applyChange({ key: 'k', version: 300, itemId: 'b' })).toBe(false);
    expect(t.lookup('k')).toBe('mine');
    expect(t.lookupWithLog('k')).toBe(MISS);
    // The stored log read next joins the items it knew (they are the store's too).
    t.putLoaded('k', { version: 100, json: '"v"', expiresAt: null, items: [item('b', 300)] });
    expect(t.lookupWithLog('k')).toEqual({ value: 'mine', items: ['a', 'b'] });
  });

  it('keeps what an unflushed value knows of the stored log through a value change and an item it already holds', () => {
    const t = withClean(100, [item('a', 50)]);
    t.putDirty('k', serializedEntry(200, '"mine"', null, entryBytes('k', 6)), 0);
    expect(t.applyChange({ key: 'k', version: 300 })).toBe(false);
    expect(t.applyChange({ key: 'k', version: 50, itemId: 'a' })).toBe(false);
    expect(t.lookupWithLog('k')).toEqual({ value: 'mine', items: ['a'] });
  });

  it('reads a clean tombstone with its log as absent', () => {
    const t = tier();
    t.putLoaded('k', { version: 10, json: null, expiresAt: null });
    expect(t.lookupWithLog('k')).toBeUndefined();
  });

  it('keeps an unflushed value untouched by a newer value change (that write is reported when flushed)', () => {
    const t = tier();
    t.putDirty('k', entryFromStored('k', { version: 200, json: '"mine"', expiresAt: null }), 0);
    expect(t.applyChange({ key: 'k', version: 300 })).toBe(false);
    expect(t.lookup('k')).toBe('mine');
    expect(t.dirty.has('k')).toBe(true);
  });
});

describe('MemoryTier.forgetStored (the feed can vouch for nothing)', () => {
  it('drops every clean entry and counts them; unflushed values stay and read the stored log again', () => {
    const t = tier();
    t.putLoaded('a', { version: 1, json: '1', expiresAt: null });
    t.putLoaded('b', { version: 2, json: null, expiresAt: null });
    t.putLoaded('c', { version: 3, json: '3', expiresAt: null, items: [item('i', 3)] });
    t.putDirty('c', entryFromStored('c', { version: 9, json: '"mine"', expiresAt: null }), 0);
    expect(t.forgetStored()).toBe(2);
    expect(t.lookup('a')).toBe(MISS);
    expect(t.lookup('b')).toBe(MISS);
    expect(t.lookup('c')).toBe('mine');
    expect(t.lookupWithLog('c')).toBe(MISS);
    expect(t.cleanEntries).toBe(0);
  });
});
