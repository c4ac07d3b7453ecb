import { describe, expect, it } from 'vitest';
import { CacheEventHub } from '../../../src/cache/cache-events.js';
import { MemoryTier } from '../../../src/cache/memory-tier.js';
import { replayOutbox } from '../../../src/cache/recovery.js';
import { WritePipeline } from '../../../src/cache/write-pipeline.js';
import { LOGICAL_SLOTS } from '../../../src/storage/contract/version.js';
import { ClockAnchor } from '../../../src/sync/clock/clock-anchor.js';
import { HybridLogicalClock } from '../../../src/sync/clock/hlc.js';
import type { Outbox, PendingItem, PendingWrite, VersionChange } from '../../../src/sync/outbox/outbox.js';
import { silentLogger } from '../../helpers/cache.js';
import { pendingItem, pendingValue } from '../../helpers/outbox.js';

const old = 1_000;
/** Versions the previous release reserved: its clock was an hour ahead of this process's. */
const R = (Date.now() + 3_600_000) * LOGICAL_SLOTS;
/** A store mark above every reserved version. */
const markAboveReserved = R + 1_000 * LOGICAL_SLOTS;

/**
 * Replays an outbox holding `rows`, `items` and the `reserved` versions (old → new) into memory,
 * through a write pipeline whose clock is anchored by its own step (`anchorAt`). The outbox's
 * highest version is that of its rows, as the outbox tables compute it (reservations are not rows).
 */
function replay(rows: PendingWrite[], items: PendingItem[], reserved: Array<[number, number]>) {
  const tier = new MemoryTier({ maxEntries: 100, maxBytes: 1_000_000, onEvict: () => {} });
  /** Each anchoring transaction the outbox was asked for. */
  const anchored: VersionChange[][] = [];
  const outbox = {
    durable: false,
    lost: false,
    failure: undefined,
    quarantineDamaged: () => [],
    highestVersion: () =>
      Math.max(0, ...rows.map((row) => row.version), ...items.map((row) => row.item.version)),
    reservedVersions: () => reserved,
    pending: () => structuredClone(rows),
    pendingItems: () => structuredClone(items),
    anchor: (changes: readonly VersionChange[]) => {
      anchored.push([...changes]);
    },
    acknowledge: () => {},
  } as unknown as Outbox;
  const clock = new HybridLogicalClock();
  const anchor: ClockAnchor = new ClockAnchor(
    async () => markAboveReserved,
    (mark) => pipeline.anchorAt(mark),
  );
  const pipeline: WritePipeline = new WritePipeline({
    tier,
    outbox,
    clock,
    anchor,
    maxPendingBytes: 1_000_000,
    listener: {
      written: () => {},
      schedule: () => {},
      isInFlight: () => false,
      coalesced: () => {},
      outboxHealed: () => {},
    },
  });
  const keys = replayOutbox({
    outbox,
    pipeline,
    clock,
    anchor,
    events: new CacheEventHub(silentLogger),
    logger: silentLogger,
    onDamaged: () => {},
  });
  return { tier, pipeline, anchor, anchored, keys };
}

const unanchored = <T extends PendingWrite | PendingItem>(row: T): T => ({ ...row, unanchored: true });

describe('replayOutbox: rows an outbox of the previous release left with reserved versions', () => {
  it('an unanchored row takes its reserved version, keeps it through the anchor, which records exactly that change; other rows are not recorded', async () => {
    const { tier, anchor, anchored, keys } = replay(
      [unanchored(pendingValue('a', old)), pendingValue('b', old + 5)],
      [],
      [[old, R]],
    );
    expect(keys).toBe(2);
    expect(tier.dirty.get('a')).toMatchObject({ version: R, logFloor: 0 });
    expect(tier.dirty.get('b')?.version).toBe(old + 5);
    await anchor.ensure();
    expect(anchor.anchored).toBe(true);
    // The store's mark is above R, yet the reserved version was anchored by the previous release.
    expect(anchored).toEqual([[{ key: 'a', from: old, to: R }]]);
    expect(tier.dirty.get('a')?.version).toBe(R);
    expect(tier.dirty.get('b')?.version).toBe(old + 5);
  });

  it('an unanchored item takes its reserved version and keeps it through the anchor', async () => {
    const { tier, anchor, anchored } = replay(
      [],
      [unanchored(pendingItem('log', 'i1', old + 1))],
      [[old + 1, R + 1]],
    );
    expect(tier.pendingLogs.get('log')?.items.map((item) => item.version)).toEqual([R + 1]);
    await anchor.ensure();
    expect(anchored).toEqual([[{ key: 'log', from: old + 1, to: R + 1, itemId: 'i1' }]]);
    expect(tier.pendingLogs.get('log')?.items.map((item) => item.version)).toEqual([R + 1]);
  });

  it("a value whose log floor's write took a reserved version moves its floor with it; a delete's floor is no floor", async () => {
    const d = { ...pendingValue('d', R + 5), logFloor: old + 2 };
    const gone = { ...pendingValue('gone', R + 6, null), logFloor: old + 2 };
    const { tier, anchor, anchored } = replay([d, gone], [], [[old + 3, R + 2]]);
    expect(tier.dirty.get('d')).toMatchObject({ version: R + 5, logFloor: R + 1 });
    expect(tier.dirty.get('gone')).toMatchObject({ version: R + 6, deleted: true });
    await anchor.ensure();
    expect(anchored).toEqual([[{ key: 'd', from: R + 5, to: R + 5, logFloor: R + 1 }]]);
  });

  it('a value without a log floor is never moved by a reservation, even one for the lowest version', async () => {
    const { tier, anchor, anchored } = replay(
      [unanchored(pendingValue('one', 1)), pendingValue('b', 5)],
      [],
      [[1, R]],
    );
    expect(tier.dirty.get('one')).toMatchObject({ version: R, logFloor: 0 });
    expect(tier.dirty.get('b')).toMatchObject({ version: 5, logFloor: 0 });
    await anchor.ensure();
    expect(anchored).toEqual([[{ key: 'one', from: 1, to: R }]]);
  });

  it('a write made after the replay is newer than a value replayed at a reserved version ahead of the wall clock', async () => {
    const { tier, pipeline } = replay([unanchored(pendingValue('a', old))], [], [[old, R]]);
    await pipeline.writeValue('a', '"new"', null, 64);
    expect(tier.lookup('a')).toBe('new');
    expect(tier.dirty.get('a')?.version).toBeGreaterThan(R);
  });

  it('an item appended after the replay comes after an item replayed at a reserved version ahead of the wall clock', async () => {
    const { tier, pipeline } = replay(
      [],
      [unanchored(pendingItem('log', 'i1', old + 1))],
      [[old + 1, R + 1]],
    );
    await pipeline.appendItem('log', '"i2"', null);
    const items = tier.pendingLogs.get('log')?.items ?? [];
    expect(tier.itemValues(items)).toEqual(['i1', 'i2']);
    expect(items[1]?.version).toBeGreaterThan(R + 1);
  });
});
