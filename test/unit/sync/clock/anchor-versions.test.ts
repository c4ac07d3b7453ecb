import { describe, expect, it } from 'vitest';
import type { LogItem } from '../../../../src/storage/contract/types.js';
import {
  type PendingItemVersion,
  type PendingValueVersion,
  planAnchorVersions,
} from '../../../../src/sync/clock/anchor-versions.js';

const value = (key: string, version: number, logFloor = 0): PendingValueVersion => ({
  key,
  version,
  logFloor,
});
const item = (key: string, version: number): PendingItemVersion => {
  const logItem: LogItem = { id: `i${version}`, version, json: `${version}` };
  return { key, item: logItem };
};

/** Versions above `anchoredUpTo` are unanchored, as `ClockAnchor.isUnanchored` says before the anchor. */
const unanchoredAbove = (anchoredUpTo: number) => (version: number) => version > anchoredUpTo;

/** Mints from `first` upwards, as the clock does once it has observed the mark; counts the calls. */
function minter(first: number) {
  let next = first;
  let calls = 0;
  return {
    mint: () => {
      calls++;
      return next++;
    },
    calls: () => calls,
  };
}

describe('planAnchorVersions', () => {
  it('changes nothing, and mints nothing, when every unanchored write is above the mark', () => {
    const m = minter(1_000);
    const changes = planAnchorVersions(
      [value('a', 20), value('b', 22, 20)],
      [item('log', 21)],
      unanchoredAbove(10),
      19,
      m.mint,
    );
    expect(changes).toEqual([]);
    expect(m.calls()).toBe(0);
    // The same writes with the mark one higher: one of them is no longer above it, so all move.
    const moved = planAnchorVersions(
      [value('a', 20), value('b', 22, 20)],
      [item('log', 21)],
      unanchoredAbove(10),
      20,
      minter(1_000).mint,
    );
    expect(moved.map((c) => c.from).sort()).toEqual([20, 21, 22]);
  });

  it('changes nothing when nothing is unanchored, whatever the mark', () => {
    const m = minter(1_000);
    expect(
      planAnchorVersions([value('a', 5, 3)], [item('log', 6)], unanchoredAbove(10), 1_000_000, m.mint),
    ).toEqual([]);
    expect(planAnchorVersions([], [], unanchoredAbove(0), 1_000_000, m.mint)).toEqual([]);
    expect(m.calls()).toBe(0);
  });

  it('gives every unanchored write a new version in the order of the old ones, however they are listed', () => {
    const m = minter(1_000);
    // Listed out of version order, as memory holds them (by key, then insertion).
    const changes = planAnchorVersions(
      [value('c', 30), value('a', 10), value('b', 20)],
      [],
      unanchoredAbove(0),
      100,
      m.mint,
    );
    expect(changes).toEqual([
      { key: 'c', from: 30, to: 1_002 },
      { key: 'a', from: 10, to: 1_000 },
      { key: 'b', from: 20, to: 1_001 },
    ]);
    expect(m.calls()).toBe(3);
  });

  it('moves all unanchored writes when only the oldest is at or below the mark', () => {
    const changes = planAnchorVersions(
      [value('a', 50), value('b', 200)],
      [],
      unanchoredAbove(0),
      50,
      minter(1_000).mint,
    );
    expect(changes).toEqual([
      { key: 'a', from: 50, to: 1_000 },
      { key: 'b', from: 200, to: 1_001 },
    ]);
  });

  it('interleaves items and values by their old versions, items named by id', () => {
    const changes = planAnchorVersions(
      [value('a', 12), value('b', 14)],
      [item('log', 11), item('log', 13), item('other', 15)],
      unanchoredAbove(0),
      100,
      minter(1_000).mint,
    );
    const newVersion = new Map(changes.map((c) => [c.from, c.to]));
    expect([11, 12, 13, 14, 15].map((v) => newVersion.get(v))).toEqual([1_000, 1_001, 1_002, 1_003, 1_004]);
    expect(changes.filter((c) => c.itemId !== undefined)).toEqual([
      { key: 'log', from: 11, to: 1_000, itemId: 'i11' },
      { key: 'log', from: 13, to: 1_002, itemId: 'i13' },
      { key: 'other', from: 15, to: 1_004, itemId: 'i15' },
    ]);
    // Values carry no item id, so the outbox updates them by key and old version.
    expect(changes.filter((c) => c.itemId === undefined)).toEqual([
      { key: 'a', from: 12, to: 1_001 },
      { key: 'b', from: 14, to: 1_003 },
    ]);
  });

  it('leaves anchored writes alone, and mints only for the unanchored ones', () => {
    const m = minter(1_000);
    const changes = planAnchorVersions(
      [value('old', 8), value('new', 12)],
      [item('log', 9), item('log', 11)],
      unanchoredAbove(10),
      100,
      m.mint,
    );
    expect(changes).toEqual([
      { key: 'new', from: 12, to: 1_001 },
      { key: 'log', from: 11, to: 1_000, itemId: 'i11' },
    ]);
    expect(m.calls()).toBe(2);
  });

  it('moves a log floor set by the value itself with the value', () => {
    // A value written over an unflushed delete ends the older items just below its own version.
    const changes = planAnchorVersions([value('a', 25, 24)], [], unanchoredAbove(0), 100, minter(1_000).mint);
    expect(changes).toEqual([{ key: 'a', from: 25, to: 1_000, logFloor: 999 }]);
  });

  it('moves a log floor set by an earlier unanchored write that a newer value replaced, keeping their order', () => {
    // The write at 25 set the floor; the value at 30 replaced it and kept it. Items at 27 lie between.
    const changes = planAnchorVersions(
      [value('a', 30, 24)],
      [item('a', 27)],
      unanchoredAbove(0),
      100,
      minter(1_000).mint,
    );
    expect(changes).toEqual([
      { key: 'a', from: 30, to: 1_002, logFloor: 999 },
      { key: 'a', from: 27, to: 1_001, itemId: 'i27' },
    ]);
  });

  it('keeps a log floor set by an anchored write, even when the value moves', () => {
    const changes = planAnchorVersions([value('a', 30, 7)], [], unanchoredAbove(10), 100, minter(1_000).mint);
    expect(changes).toStrictEqual([{ key: 'a', from: 30, to: 1_000 }]);
  });

  it('reads a floor of 0 as none, whatever isUnanchored says of version 1', () => {
    const asked: number[] = [];
    const changes = planAnchorVersions(
      [value('a', 30, 0)],
      [],
      (v) => {
        asked.push(v);
        return true;
      },
      100,
      minter(1_000).mint,
    );
    expect(changes).toStrictEqual([{ key: 'a', from: 30, to: 1_000 }]);
    expect(asked).not.toContain(1);
  });

  it('takes the iterables once each (memory passes live iterators)', () => {
    const values = [value('a', 12)][Symbol.iterator]();
    const items = [item('log', 11)][Symbol.iterator]();
    const changes = planAnchorVersions(values, items, unanchoredAbove(0), 100, minter(1_000).mint);
    expect(changes).toEqual([
      { key: 'a', from: 12, to: 1_001 },
      { key: 'log', from: 11, to: 1_000, itemId: 'i11' },
    ]);
  });
});

describe('planAnchorVersions and log floors', () => {
  it('moves a floor whose ending write is unanchored even when the floor below it is anchored', () => {
    const m = minter(1_000);
    // The key's log was ended by its first coalesced write, 100 (unanchored); 99 is anchored.
    const changes = planAnchorVersions([value('k', 105, 99)], [], unanchoredAbove(99), 500, m.mint);
    expect(changes).toEqual([{ key: 'k', from: 105, to: 1_001, logFloor: 999 }]);
  });

  it('moves the floor of a value that keeps its version (a re-queued write) when its ending write moves', () => {
    const m = minter(1_000);
    const requeued = (version: number) => version > 99 && version !== 105;
    const changes = planAnchorVersions([value('k', 105, 99)], [], requeued, 500, m.mint);
    expect(changes).toEqual([{ key: 'k', from: 105, to: 105, logFloor: 999 }]);
  });

  it('gives a value that ends no items no floor, even when version 1 moves', () => {
    const m = minter(1_000);
    const changes = planAnchorVersions([value('k', 5)], [item('log', 1)], unanchoredAbove(0), 500, m.mint);
    expect(changes).toEqual([
      { key: 'k', from: 5, to: 1_001 },
      { key: 'log', from: 1, to: 1_000, itemId: 'i1' },
    ]);
  });
});
