import { describe, expect, it } from 'vitest';
import { serializedEntry } from '../../../src/cache/entry.js';
import { MemoryTier } from '../../../src/cache/memory-tier.js';
import { outboxRowsFromMemory } from '../../../src/cache/outbox-rows.js';
import type { LogItem } from '../../../src/storage/contract/types.js';

const item = (version: number): LogItem => ({ id: `i${version}`, version, json: JSON.stringify(version) });

describe('outboxRowsFromMemory', () => {
  it('gives each rebuilt item its own append time and asked expiry, as its lost row had them', () => {
    const tier = new MemoryTier({ maxEntries: 10, maxBytes: 1_000_000, onEvict: () => {} });
    // The key expired between the two appends (a replay judges each at its own time), and the
    // second was appended with the wall clock stepped back.
    tier.appendItem('k', item(10), 1_100, 50, 1_000);
    tier.appendItem('k', item(11), 5_000, 50, 900);
    const rows = outboxRowsFromMemory(tier, () => false, [], 11);
    expect(rows.items).toEqual([
      { key: 'k', item: item(10), expiresAt: 1_100, queuedAt: 1_000 },
      { key: 'k', item: item(11), expiresAt: 5_000, queuedAt: 900 },
    ]);
  });

  it("keeps each value's log floor, the first version it coalesced and its unanchored flag, and no such field it lacks", () => {
    const tier = new MemoryTier({ maxEntries: 10, maxBytes: 1_000_000, onEvict: () => {} });
    // 'plain': one write. 'chain': a delete then a value over it (its log floor ends the older
    // items; the chain's first version is the delete's), both still unflushed.
    tier.putDirty('plain', serializedEntry(20, '"p"', null, 10), 1_000);
    tier.putDirty('chain', serializedEntry(30, null, null, 10), 2_000);
    tier.putDirty('chain', serializedEntry(31, '"c"', 9_000, 10), 2_500);
    const unanchored = new Set([31]);
    const rows = outboxRowsFromMemory(tier, (version) => unanchored.has(version), [], 31);
    expect(rows.values).toStrictEqual([
      { key: 'plain', version: 20, json: '"p"', expiresAt: null, queuedAt: 1_000 },
      {
        key: 'chain',
        version: 31,
        json: '"c"',
        expiresAt: 9_000,
        queuedAt: 2_000,
        logFloor: 30,
        firstVersion: 30,
        unanchored: true,
      },
    ]);
    expect(rows.highestVersion).toBe(31);
  });

  it('marks an unanchored item, and only that one', () => {
    const tier = new MemoryTier({ maxEntries: 10, maxBytes: 1_000_000, onEvict: () => {} });
    tier.appendItem('k', item(10), null, 50, 1_000);
    tier.appendItem('k', item(11), null, 50, 1_001);
    const rows = outboxRowsFromMemory(tier, (version) => version === 11, [], 11);
    expect(rows.items).toStrictEqual([
      { key: 'k', item: item(10), expiresAt: null, queuedAt: 1_000 },
      { key: 'k', item: item(11), expiresAt: null, queuedAt: 1_001, unanchored: true },
    ]);
  });
});
