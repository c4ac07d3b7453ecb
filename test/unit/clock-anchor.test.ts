import { describe, expect, it } from 'vitest';
import { LOGICAL_SLOTS } from '../../src/storage/version.js';
import { ClockAnchor } from '../../src/sync/clock-anchor.js';
import { HybridLogicalClock } from '../../src/sync/hlc.js';

/** An anchor over a clock, with a mark the test gives and the reservations it records. */
function setup(mark = 0) {
  const clock = new HybridLogicalClock();
  const recorded: Array<Array<[number, number]>> = [];
  let reads = 0;
  const anchor = new ClockAnchor(
    clock,
    async () => {
      reads++;
      return mark;
    },
    (reserved) => recorded.push([...reserved]),
  );
  return { clock, anchor, recorded, reads: () => reads };
}

describe('ClockAnchor', () => {
  it('is anchored once the mark is read, and reads it only once', async () => {
    const { anchor, reads } = setup();
    expect(anchor.anchored).toBe(false);
    await Promise.all([anchor.ensure(), anchor.ensure()]);
    expect(anchor.anchored).toBe(true);
    await anchor.ensure();
    expect(reads()).toBe(1);
  });

  it('reserves in the order of the old versions, however they were replayed, and records them once', async () => {
    const { clock, anchor, recorded } = setup();
    const base = clock.next();
    // Replayed rows come in the order they were queued, not by version.
    anchor.replayedUnanchored(base + 30);
    anchor.replayedUnanchored(base + 10);
    anchor.replayedUnanchored(base + 20);
    await anchor.ensure();
    expect(recorded).toHaveLength(1);
    const [first, second, third] = [base + 10, base + 20, base + 30].map((v) => anchor.remintedVersion(v));
    expect(first).toBeLessThan(second as number);
    expect(second).toBeLessThan(third as number);
    expect(recorded[0]?.map(([from]) => from)).toEqual([base + 10, base + 20, base + 30]);
  });

  it('records nothing when nothing was accepted before the anchor', async () => {
    const { anchor, recorded } = setup();
    await anchor.ensure();
    expect(recorded).toEqual([]);
    expect(anchor.minted(123)).toBe(false);
    expect(anchor.needsRemint(123)).toBe(false);
  });

  it('gives replayed writes the versions an earlier process reserved, and reserves only for the others', async () => {
    const { clock, anchor, recorded } = setup();
    const reservedEarlier: Array<[number, number]> = [
      [500, 9_000_000_002],
      [400, 9_000_000_001],
    ];
    anchor.restoreReserved(reservedEarlier);
    // The clock never mints below a version an earlier process reserved.
    expect(clock.next()).toBeGreaterThan(9_000_000_002);
    anchor.replayedUnanchored(400);
    anchor.replayedUnanchored(500);
    const fresh = clock.next();
    expect(anchor.minted(fresh)).toBe(true);
    await anchor.ensure();
    expect(anchor.remintedVersion(400)).toBe(9_000_000_001);
    expect(anchor.remintedVersion(500)).toBe(9_000_000_002);
    expect(anchor.remintedVersion(fresh)).toBeGreaterThan(9_000_000_002);
    expect(recorded).toEqual([[[fresh, anchor.remintedVersion(fresh)]]]);
    // Ends set below any of them move, in either numbering.
    expect(anchor.remapEnd(399)).toBe(9_000_000_000);
    expect(anchor.remapEnd(499)).toBe(9_000_000_001);
  });

  it('sees every stored item as ended by an end below a write with no version reserved yet', async () => {
    const { clock, anchor } = setup();
    const version = clock.next();
    anchor.minted(version);
    expect(anchor.effectiveEnd(version - 1)).toBe(Number.POSITIVE_INFINITY);
    expect(anchor.effectiveEnd(version - 2)).toBe(version - 2);
    await anchor.ensure();
    expect(anchor.effectiveEnd(version - 1)).toBe(anchor.remintedVersion(version) - 1);
  });

  it('forgets a write that will not be sent, and reserves each version once across anchors', async () => {
    const { clock, anchor } = setup();
    const version = clock.next();
    anchor.minted(version);
    anchor.forget(version);
    expect(anchor.needsRemint(version)).toBe(false);
    await anchor.ensure();
    // Forgotten writes keep their reservation: a value's end may still be set below them.
    expect(anchor.remapEnd(version - 1)).toBe(anchor.remintedVersion(version) - 1);
  });

  it('reserves nothing for a refused write: an anchor on the full disk that refused it records nothing', async () => {
    const { clock, anchor, recorded } = setup();
    const refused = clock.next();
    const kept = clock.next();
    anchor.minted(refused);
    anchor.minted(kept);
    anchor.refused(refused);
    expect(anchor.needsRemint(refused)).toBe(false);
    // Nothing reads the refused write's log end as open-ended.
    expect(anchor.effectiveEnd(refused - 1)).toBe(refused - 1);
    await anchor.ensure();
    expect(recorded).toEqual([[[kept, anchor.remintedVersion(kept)]]]);
    expect(() => anchor.remintedVersion(refused)).toThrow(
      `no new version was reserved for version ${refused}`,
    );
  });

  it('stays unanchored when the reservations cannot be recorded, and tries again', async () => {
    const clock = new HybridLogicalClock();
    let fail = true;
    const anchor = new ClockAnchor(
      clock,
      async () => 0,
      () => {
        if (fail) throw new Error('disk full');
      },
    );
    const version = clock.next();
    anchor.minted(version);
    await expect(anchor.ensure()).rejects.toThrow('disk full');
    expect(anchor.anchored).toBe(false);
    fail = false;
    await anchor.ensure();
    expect(anchor.anchored).toBe(true);
    expect(anchor.remintedVersion(version)).toBeGreaterThan(version);
  });
});

describe('ClockAnchor across processes', () => {
  it('moves the clock past every version an earlier process reserved', () => {
    const { clock, anchor } = setup();
    const reserved = Date.now() * LOGICAL_SLOTS * 2; // far ahead of this process's wall clock
    anchor.restoreReserved([[400, reserved]]);
    expect(clock.next()).toBeGreaterThan(reserved);
  });

  it('knows where an end below a replayed write with a reservation lies before the anchor', () => {
    const { anchor } = setup();
    anchor.restoreReserved([[400, 9_000]]);
    anchor.replayedUnanchored(400);
    expect(anchor.effectiveEnd(399)).toBe(8_999);
    expect(anchor.needsRemint(400)).toBe(true);
  });

  it('finds earlier reservations and new ones alike, whatever their order', async () => {
    const { clock, anchor, recorded } = setup();
    const restored: Array<[number, number]> = [
      [500, 9_000_000_002],
      [300, 9_000_000_001],
    ];
    anchor.restoreReserved(restored);
    for (const version of [600, 400, 200]) anchor.replayedUnanchored(version);
    for (const version of [300, 500]) anchor.replayedUnanchored(version);
    await anchor.ensure();
    expect(recorded).toHaveLength(1);
    expect(recorded[0]?.map(([from]) => from)).toEqual([200, 400, 600]);
    expect(anchor.remintedVersion(300)).toBe(9_000_000_001);
    expect(anchor.remintedVersion(500)).toBe(9_000_000_002);
    const fresh = [200, 400, 600].map((version) => anchor.remintedVersion(version));
    expect([...fresh].sort((a, b) => a - b)).toEqual(fresh);
    expect(fresh[0]).toBeGreaterThan(9_000_000_002);
    expect(clock.next()).toBeGreaterThan(fresh[2] as number);
    expect(anchor.remapEnd(299)).toBe(9_000_000_000);
    expect(anchor.remapEnd(599)).toBe((fresh[2] as number) - 1);
  });

  it('says which version has no reservation', async () => {
    const { anchor } = setup();
    anchor.replayedUnanchored(400);
    await anchor.ensure();
    expect(() => anchor.remintedVersion(300)).toThrow('no new version was reserved for version 300');
    expect(() => anchor.remintedVersion(500)).toThrow('no new version was reserved for version 500');
  });

  it('waits for every unanchored write still being appended', async () => {
    const { anchor } = setup();
    anchor.appendStarted();
    anchor.appendStarted();
    let settled = false;
    const waiting = anchor.appendsSettled().then(() => {
      settled = true;
    });
    anchor.appendSettled();
    await Promise.resolve();
    await Promise.resolve();
    expect(settled).toBe(false);
    anchor.appendSettled();
    await waiting;
    expect(settled).toBe(true);
    await anchor.appendsSettled();
  });
});
