import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type ItemAppend,
  itemsBeforeValue,
  type RefreshRun,
  refreshedExpiry,
  refreshRuns,
} from '../../../src/cache/item-refresh.js';
import type { LogItem } from '../../../src/storage/contract/types.js';

const item = (version: number): LogItem => ({ id: `i${version}`, version, json: String(version) });
const appends = (table: Record<number, ItemAppend>) => (it: LogItem) => table[it.version];
const shape = (runs: RefreshRun[]) =>
  runs.map((run) => ({
    versions: run.items.map((i) => i.version),
    appendedAt: run.appendedAt,
    expiresAt: run.expiresAt,
  }));

afterEach(() => vi.restoreAllMocks());

describe('itemsBeforeValue', () => {
  const items = [item(5), item(10), item(15)];

  it('counts the items at or below the first version of the value chain', () => {
    expect(itemsBeforeValue(items, 10)).toBe(2);
    expect(itemsBeforeValue(items, 9)).toBe(1);
    expect(itemsBeforeValue(items, 4)).toBe(0);
    expect(itemsBeforeValue(items, 20)).toBe(3);
  });
});

describe('refreshRuns', () => {
  it('joins an item appended after the run began and before its expiry, keeping the later expiry', () => {
    const runs = refreshRuns(
      [item(1), item(2)],
      appends({ 1: { at: 100, expiresAt: 200 }, 2: { at: 199, expiresAt: 300 } }),
    );
    expect(shape(runs)).toEqual([{ versions: [1, 2], appendedAt: 100, expiresAt: 300 }]);
  });

  it('starts a new run for an item appended at or after the run would have expired', () => {
    const runs = refreshRuns(
      [item(1), item(2)],
      appends({ 1: { at: 100, expiresAt: 200 }, 2: { at: 200, expiresAt: 300 } }),
    );
    expect(shape(runs)).toEqual([
      { versions: [1], appendedAt: 100, expiresAt: 200 },
      { versions: [2], appendedAt: 200, expiresAt: 300 },
    ]);
  });

  it('starts a new run for an item appended with the clock stepped back', () => {
    const runs = refreshRuns(
      [item(1), item(2)],
      appends({ 1: { at: 100, expiresAt: 200 }, 2: { at: 99, expiresAt: 150 } }),
    );
    expect(shape(runs)).toEqual([
      { versions: [1], appendedAt: 100, expiresAt: 200 },
      { versions: [2], appendedAt: 99, expiresAt: 150 },
    ]);
  });

  it('keeps a run that never expires open to any later item, and never to an earlier one', () => {
    const runs = refreshRuns(
      [item(1), item(2), item(3)],
      appends({
        1: { at: 100, expiresAt: null },
        2: { at: 1_000_000, expiresAt: 200 },
        3: { at: 50, expiresAt: 60 },
      }),
    );
    expect(shape(runs)).toEqual([
      { versions: [1, 2], appendedAt: 100, expiresAt: null },
      { versions: [3], appendedAt: 50, expiresAt: 60 },
    ]);
  });

  it('judges an item whose append memory does not know with the run before it', () => {
    const runs = refreshRuns([item(1), item(2)], appends({ 1: { at: 100, expiresAt: 200 } }));
    expect(shape(runs)).toEqual([{ versions: [1, 2], appendedAt: 100, expiresAt: 200 }]);
  });

  it('judges a first item whose append memory does not know as appended now, asking for no expiry', () => {
    vi.spyOn(Date, 'now').mockReturnValue(4_242);
    const runs = refreshRuns([item(1)], appends({}));
    expect(shape(runs)).toEqual([{ versions: [1], appendedAt: 4_242, expiresAt: null }]);
  });
});

describe('refreshedExpiry', () => {
  const run = (versions: number[], appendedAt: number, expiresAt: number | null): RefreshRun => ({
    items: versions.map(item),
    appendedAt,
    expiresAt,
  });

  it('raises the expiry by a run newer than the value that found it live', () => {
    expect(refreshedExpiry(10, 1_000, [run([11, 12], 500, 2_000)])).toBe(2_000);
  });

  it('leaves it for a run no newer than the value', () => {
    expect(refreshedExpiry(12, 1_000, [run([11, 12], 500, 2_000)])).toBe(1_000);
  });

  it('leaves it for a run appended at or after the value expired', () => {
    expect(refreshedExpiry(10, 1_000, [run([11], 1_000, 2_000)])).toBe(1_000);
    expect(refreshedExpiry(10, 1_000, [run([11], 1_500, 2_000)])).toBe(1_000);
  });

  it('never shortens a value that does not expire, and lets a run that does not expire end its expiry', () => {
    expect(refreshedExpiry(10, null, [run([11], 500, 2_000)])).toBeNull();
    expect(refreshedExpiry(10, 1_000, [run([11], 500, null)])).toBeNull();
  });

  it('judges each run against the expiry the runs before it left', () => {
    // The second run comes after the value's own expiry but before the first run's.
    expect(refreshedExpiry(10, 1_000, [run([11], 500, 2_000), run([12], 1_500, 3_000)])).toBe(3_000);
  });
});
