import { describe, expect, it } from 'vitest';
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
});
