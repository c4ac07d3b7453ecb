import { describe, expect, it } from 'vitest';
import type { VersionedWrite } from '../../src/storage/types.js';
import { ClockAnchor } from '../../src/sync/clock-anchor.js';
import { HybridLogicalClock } from '../../src/sync/hlc.js';
import { applyRemints, planRemints } from '../../src/sync/remint-plan.js';

const item = (version: number) => ({ id: `i${version}`, version, json: `${version}` });
const appendOf = (key: string, versions: number[]): VersionedWrite => ({
  key,
  version: Math.max(...versions),
  json: null,
  expiresAt: null,
  appendedAt: 0,
  items: versions.map(item),
});

/** A clock whose writes were accepted before it read the store's mark, then anchored above `mark`. */
async function anchoredAfter(mark: number, minted: (clock: HybridLogicalClock, anchor: ClockAnchor) => void) {
  const clock = new HybridLogicalClock();
  const anchor = new ClockAnchor(clock, async () => mark);
  minted(clock, anchor);
  await anchor.ensure();
  return { clock, anchor };
}

describe('versions reserved at the anchor', () => {
  it('are above the mark, in the order of the old ones, and below every version minted after', async () => {
    const olds: number[] = [];
    const mark = Date.now() * 1024 * 2; // the store is far ahead of this clock
    const { clock, anchor } = await anchoredAfter(mark, (c, a) => {
      for (let i = 0; i < 3; i++) {
        const version = c.next();
        expect(a.minted(version)).toBe(true);
        olds.push(version);
      }
    });
    const reserved = olds.map((old) => anchor.remintedVersion(old));
    expect(reserved[0]).toBeGreaterThan(mark);
    expect([...reserved].sort((a, b) => a - b)).toEqual(reserved);
    // A write accepted after the anchor, re-minted or not yet, sorts after all of them.
    expect(clock.next()).toBeGreaterThan(Math.max(...reserved));
    expect(anchor.minted(clock.next())).toBe(false);
  });

  it('moves a log floor set below a write accepted before the anchor, and only such an end', async () => {
    let olds: number[] = [];
    const { anchor } = await anchoredAfter(Date.now() * 1024 * 2, (c, a) => {
      olds = [c.next(), c.next()];
      for (const old of olds) a.minted(old);
    });
    const [first = 0, second = 0] = olds;
    expect(anchor.remapEnd(first - 1)).toBe(anchor.remintedVersion(first) - 1);
    expect(anchor.remapEnd(second - 1)).toBe(anchor.remintedVersion(second) - 1);
    // Ends set by an earlier process, or after the anchor, are kept.
    expect(anchor.remapEnd(first - 10)).toBe(first - 10);
    expect(anchor.remapEnd(second + 5)).toBe(second + 5);
    expect(() => anchor.remintedVersion(first + 0.5)).toThrow();
  });
});

describe('planRemints', () => {
  const reserved = (map: Record<number, number>) => ({
    needsRemint: (v: number) => v in map,
    remintedVersion: (v: number) => map[v] as number,
    remapEnd: (e: number) => e + 1_000,
  });

  it('leaves writes accepted after the anchor alone', () => {
    const writes = [appendOf('a', [5, 6]), { key: 'a', version: 7, json: '1', expiresAt: null }];
    expect(planRemints(writes, reserved({}))).toEqual([]);
  });

  it('gives values and items their reserved versions, in place, and the append write its newest', () => {
    const writes: VersionedWrite[] = [
      appendOf('a', [3, 5]),
      { key: 'a', version: 4, json: '1', expiresAt: null },
    ];
    const changes = planRemints(writes, reserved({ 3: 100, 4: 101 }));
    expect(changes).toEqual([
      { key: 'a', from: 3, to: 100, itemId: 'i3' },
      { key: 'a', from: 4, to: 101 },
    ]);
    applyRemints(writes, changes);
    expect(writes[0]?.items?.map((i) => i.version)).toEqual([100, 5]);
    expect(writes[0]?.version).toBe(100);
    expect(writes[1]?.version).toBe(101);
  });

  it('moves the end of the items a value ends, re-minted or not', () => {
    const reminted: VersionedWrite = { key: 'a', version: 3, json: '1', expiresAt: null, logFloor: 2 };
    const kept: VersionedWrite = { key: 'b', version: 9, json: '1', expiresAt: null, logFloor: 2 };
    const writes = [reminted, kept];
    const changes = planRemints(writes, reserved({ 3: 100 }));
    applyRemints(writes, changes);
    expect(reminted).toMatchObject({ version: 100, logFloor: 1_002 });
    expect(kept).toMatchObject({ version: 9, logFloor: 1_002 });
  });
});

describe('a log floor that stays where it is', () => {
  const keepEnds = (map: Record<number, number>) => ({
    needsRemint: (v: number) => v in map,
    remintedVersion: (v: number) => map[v] as number,
    remapEnd: (e: number) => e,
  });

  it('leaves a value with such an end alone when it needs no new version', () => {
    const write: VersionedWrite = { key: 'a', version: 9, json: '1', expiresAt: null, logFloor: 2 };
    expect(planRemints([write], keepEnds({}))).toEqual([]);
  });

  it('is kept by a value given a new version', () => {
    const write: VersionedWrite = { key: 'a', version: 9, json: '1', expiresAt: null, logFloor: 2 };
    const changes = planRemints([write], keepEnds({ 9: 100 }));
    expect(changes).toStrictEqual([{ key: 'a', from: 9, to: 100 }]);
    applyRemints([write], changes);
    expect(write).toMatchObject({ version: 100, logFloor: 2 });
  });
});

describe('applyRemints', () => {
  it('leaves a value write alone when the change was planned for another of its versions', () => {
    const write: VersionedWrite = { key: 'a', version: 12, json: '2', expiresAt: null, logFloor: 11 };
    applyRemints([write], [{ key: 'a', from: 9, to: 100, endsLogAt: 99 }]);
    expect(write).toMatchObject({ version: 12, logFloor: 11 });
  });
});
