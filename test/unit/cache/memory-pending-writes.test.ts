import { describe, expect, it } from 'vitest';
import { entryBytes, serializedEntry } from '../../../src/cache/entry.js';
import { MemoryPendingWrites } from '../../../src/cache/memory-pending-writes.js';
import { MemoryTier, MISS } from '../../../src/cache/memory-tier.js';
import type { AppendWrite, LogItem, ValueWrite } from '../../../src/storage/contract/types.js';

function setup() {
  const tier = new MemoryTier({ maxEntries: 100, maxBytes: 1_000_000, onEvict: () => {} });
  const counters = { flushedWrites: 0, deadLetters: 0, superseded: 0 };
  const changed: Array<[string, number]> = [];
  const pending = new MemoryPendingWrites(tier, counters, (key, version) => changed.push([key, version]));
  const setValue = (key: string, version: number, value: unknown, expiresAt: number | null = null) => {
    const json = value === undefined ? null : JSON.stringify(value);
    tier.putDirty(key, serializedEntry(version, json, expiresAt, entryBytes(key, json?.length ?? 0)), 1_000);
  };
  const append = (key: string, version: number, expiresAt: number | null = null, now = 2_000): LogItem => {
    const item = { id: `i${version}`, version, json: JSON.stringify({ n: version }) };
    tier.appendItem(key, item, expiresAt, 50, now);
    return item;
  };
  return { tier, counters, changed, pending, setValue, append };
}

describe('MemoryPendingWrites', () => {
  it('has nothing to send for a key with no pending write', () => {
    const { pending } = setup();
    expect(pending.writesFor('k')).toEqual([]);
    expect(pending.isPending('k')).toBe(false);
  });

  it("sends a key's unflushed items as one append at the newest item's version, then its value", () => {
    const { pending, setValue, append } = setup();
    const first = append('k', 10, 5_000, 1_500);
    const second = append('k', 12, 9_000, 1_700);
    setValue('k', 13, { v: 1 }, 7_000);
    const writes = pending.writesFor('k');
    expect(writes).toEqual([
      { key: 'k', version: 12, json: null, expiresAt: 9_000, appendedAt: 1_500, items: [first, second] },
      // Written at 1_000: a store judges what it replaces at that time.
      { key: 'k', version: 13, json: '{"v":1}', expiresAt: 7_000, writtenAt: 1_000 },
    ]);
    // The value write carries no log floor when none was coalesced into it.
    expect(writes[1]).not.toHaveProperty('logFloor');
    expect(pending.isPending('k')).toBe(true);
  });

  it('sends items appended to the unflushed value after it, so their refresh never reaches an older stored value', () => {
    const { pending, setValue, append } = setup();
    // 10 was appended to the value the store holds; 14 and 16 to the unflushed chain 12 -> 15.
    const before = append('k', 10, 5_000, 1_500);
    setValue('k', 12, 'first');
    const during = append('k', 14, 6_000, 1_600);
    setValue('k', 15, 'second');
    const after = append('k', 16, 7_000, 1_700);
    expect(pending.writesFor('k')).toEqual([
      { key: 'k', version: 10, json: null, expiresAt: 5_000, appendedAt: 1_500, items: [before] },
      { key: 'k', version: 15, json: '"second"', expiresAt: null, writtenAt: 1_000, firstVersion: 12 },
      // 14 was appended to 'first', which 'second' replaced: its refresh must not reach 'second'.
      { key: 'k', version: 14, json: null, expiresAt: 6_000, appendedAt: 1_600, items: [during] },
      { key: 'k', version: 16, json: null, expiresAt: 7_000, appendedAt: 1_700, items: [after] },
    ]);
  });

  it('splits items into appends the store judges as memory judged each one', () => {
    const { pending, append } = setup();
    const a = append('k', 10, 2_100, 2_000);
    const b = append('k', 11, 2_500, 2_050); // appended while a's refresh held: one judgement
    const c = append('k', 12, 9_000, 3_000); // after 2_500: the key may have expired in between
    const d = append('k', 13, 9_500, 2_900); // the wall clock stepped back
    const e = append('k', 14, null, 2_950); // live if d found it live: no TTL of its own
    const f = append('k', 15, 1, 99_000); // after no expiry at all: still one judgement
    expect(pending.writesFor('k')).toEqual([
      { key: 'k', version: 11, json: null, expiresAt: 2_500, appendedAt: 2_000, items: [a, b] },
      { key: 'k', version: 12, json: null, expiresAt: 9_000, appendedAt: 3_000, items: [c] },
      { key: 'k', version: 15, json: null, expiresAt: null, appendedAt: 2_900, items: [d, e, f] },
    ]);
  });

  it("hands out a copy of the items: the flusher's batch does not change with later appends", () => {
    const { pending, append } = setup();
    append('k', 10);
    const [write] = pending.writesFor('k') as [AppendWrite];
    append('k', 11);
    expect(write.items.map((item) => item.version)).toEqual([10]);
  });

  it('sends the log floor of a value written over an unflushed delete', () => {
    const { pending, setValue } = setup();
    setValue('k', 20, undefined);
    setValue('k', 25, 'back');
    expect(pending.writesFor('k')).toEqual([
      // Coalesced over the delete at 20: the first write of the chain.
      {
        key: 'k',
        version: 25,
        json: '"back"',
        expiresAt: null,
        writtenAt: 1_000,
        logFloor: 24,
        firstVersion: 20,
      },
    ]);
  });

  it('counts an applied value and settles it: memory keeps it, clean', () => {
    const { tier, counters, pending, changed, setValue } = setup();
    setValue('k', 5, 'v');
    const [write] = pending.writesFor('k') as [ValueWrite];
    pending.applied(write);
    expect(counters.flushedWrites).toBe(1);
    expect(tier.dirty.has('k')).toBe(false);
    expect(tier.lookup('k')).toBe('v');
    expect(pending.isPending('k')).toBe(false);
    expect(changed).toEqual([]);
  });

  it('settles applied items and marks reads of the key in flight as stale', () => {
    const { tier, counters, pending, changed, append } = setup();
    append('k', 10);
    const [write] = pending.writesFor('k') as [AppendWrite];
    append('k', 11);
    pending.applied(write);
    expect(counters.flushedWrites).toBe(1);
    expect(tier.pendingLogs.get('k')?.items.map((item) => item.version)).toEqual([11]);
    expect(changed).toEqual([['k', Number.MAX_SAFE_INTEGER]]);
  });

  it('settles a write the store already held without counting it as flushed', () => {
    const { tier, counters, pending, changed, setValue, append } = setup();
    setValue('k', 5, 'v');
    append('j', 6);
    for (const write of [...pending.writesFor('k'), ...pending.writesFor('j')]) pending.alreadyStored(write);
    expect(counters.flushedWrites).toBe(0);
    expect(tier.dirty.size).toBe(0);
    expect(tier.pendingLogs.size).toBe(0);
    expect(changed).toEqual([['j', Number.MAX_SAFE_INTEGER]]);
  });

  it('sends a value re-versioned in memory at its new version, with its moved floor', () => {
    const { tier, pending, changed, setValue } = setup();
    setValue('k', 20, undefined);
    setValue('k', 25, 'back');
    expect(tier.changeVersion('k', 25, 40, 39)).toBe(true);
    expect(pending.writesFor('k')).toEqual([
      {
        key: 'k',
        version: 40,
        json: '"back"',
        expiresAt: null,
        writtenAt: 1_000,
        logFloor: 39,
        firstVersion: 20,
      },
    ]);
    // Without a new floor, the floor stays where it is.
    expect(tier.changeVersion('k', 40, 41)).toBe(true);
    expect(pending.writesFor('k')).toMatchObject([{ version: 41, logFloor: 39 }]);
    // A reversion of a version the key no longer holds changes nothing.
    expect(tier.changeVersion('k', 25, 50, 49)).toBe(false);
    expect(pending.writesFor('k')).toMatchObject([{ version: 41, logFloor: 39 }]);
    // Telling reads in flight is the anchoring step's part, not this one's.
    expect(changed).toEqual([]);
  });

  it('sends appended items re-versioned in place at their new versions', () => {
    const { tier, pending, append } = setup();
    const first = append('k', 10);
    const second = append('k', 12);
    first.version = 100;
    second.version = 101;
    expect(pending.writesFor('k')).toMatchObject([{ key: 'k', version: 101, items: [first, second] }]);
    expect(tier.pendingLogs.get('k')?.items.map((item) => item.version)).toEqual([100, 101]);
  });

  it('forgets a superseded value and counts it, unless a newer local write replaced it', () => {
    const { tier, counters, pending, setValue } = setup();
    setValue('k', 5, 'old');
    const [write] = pending.writesFor('k') as [ValueWrite];
    setValue('k', 6, 'newer');
    expect(pending.superseded(write)).toBe(false);
    expect(counters.superseded).toBe(0);
    expect(tier.lookup('k')).toBe('newer');

    const [newer] = pending.writesFor('k') as [ValueWrite];
    expect(pending.superseded(newer)).toBe(true);
    expect(counters.superseded).toBe(1);
    expect(tier.dirty.has('k')).toBe(false);
    expect(tier.lookup('k')).toBe(MISS);
  });

  it('drops items a newer tombstone refused, and counts them as one superseded write', () => {
    const { tier, counters, pending, append } = setup();
    append('k', 10);
    append('k', 11);
    const [write] = pending.writesFor('k') as [AppendWrite];
    expect(pending.superseded(write)).toBe(true);
    expect(counters.superseded).toBe(1);
    expect(tier.pendingLogs.has('k')).toBe(false);
    expect(tier.pendingBytes).toBe(0);
  });

  it('counts each dead-lettered item, and a dead-lettered value once, forgetting both', () => {
    const { tier, counters, pending, setValue, append } = setup();
    append('a', 10);
    append('a', 11);
    append('a', 12);
    setValue('b', 13, 'v');
    for (const write of [...pending.writesFor('a'), ...pending.writesFor('b')]) pending.deadLettered(write);
    expect(counters.deadLetters).toBe(4);
    expect(tier.pendingLogs.has('a')).toBe(false);
    expect(tier.dirty.has('b')).toBe(false);
    expect(tier.lookup('b')).toBe(MISS);
    expect(counters.flushedWrites + counters.superseded).toBe(0);
  });
});
