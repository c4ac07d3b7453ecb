import { describe, expect, it } from 'vitest';
import {
  cursorIsServable,
  type FeedBounds,
  feedPageLimit,
  formatCursor,
  parseCursor,
} from '../../../../src/storage/contract/feed.js';

describe('feed cursors', () => {
  it('read back the position they were made from, whatever the epoch holds', () => {
    for (const epoch of ['3f2c8a9e-0b1d-4c6e-9a7f-5d2e1b0c4a68', 'host:db:1', '']) {
      const position = { id: 42, version: Number.MAX_SAFE_INTEGER };
      expect(parseCursor(formatCursor(epoch, position), epoch)).toEqual(position);
    }
  });

  it('name nothing in another epoch, and garbage names nothing', () => {
    const epoch = 'e1';
    expect(parseCursor(formatCursor('e2', { id: 1, version: 1 }), epoch)).toBeUndefined();
    for (const garbage of [
      '',
      'e1',
      'e1:1',
      'e1:1:',
      'e1:01:1',
      'e1:1:1.5',
      'e1:-1:0',
      'e1:1:99999999999999999',
      // Sixteen digits pass the pattern but not as a safe integer.
      'e1:1:9999999999999999',
      'e1:9999999999999999:1',
    ]) {
      expect(parseCursor(garbage, epoch), garbage).toBeUndefined();
    }
    expect(parseCursor(42 as unknown as string, epoch)).toBeUndefined();
  });
});

describe('cursorIsServable', () => {
  const versions = new Map([
    [5, 50],
    [6, 60],
    [7, 70],
  ]);
  const bounds: FeedBounds = {
    head: { id: 7, version: 70 },
    prunedThrough: 4,
    versionOf: (id) => versions.get(id),
  };

  it('serves a cursor from the pruned boundary up to the head', () => {
    expect(cursorIsServable({ id: 4, version: 40 }, bounds)).toBe(true);
    expect(cursorIsServable({ id: 5, version: 50 }, bounds)).toBe(true);
    expect(cursorIsServable({ id: 7, version: 70 }, bounds)).toBe(true);
  });

  it('refuses a cursor before the pruned boundary, ahead of the head, or naming another write', () => {
    expect(cursorIsServable({ id: 3, version: 30 }, bounds)).toBe(false);
    expect(cursorIsServable({ id: 8, version: 80 }, bounds)).toBe(false);
    expect(cursorIsServable({ id: 6, version: 61 }, bounds)).toBe(false);
    expect(cursorIsServable({ id: 7, version: 71 }, bounds)).toBe(false);
  });

  it('serves the start of a log that was never pruned', () => {
    const fresh: FeedBounds = { head: { id: 0, version: 0 }, prunedThrough: 0, versionOf: () => undefined };
    expect(cursorIsServable({ id: 0, version: 0 }, fresh)).toBe(true);
    expect(cursorIsServable({ id: 0, version: 0 }, { ...bounds, prunedThrough: 0 })).toBe(true);
  });
});

describe('feedPageLimit', () => {
  it('defaults to 1000 and takes only positive integers', () => {
    expect(feedPageLimit(undefined)).toBe(1000);
    expect(feedPageLimit({ limit: 1 })).toBe(1);
    for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => feedPageLimit({ limit })).toThrow(RangeError);
      expect(() => feedPageLimit({ limit })).toThrow(`limit must be a positive integer, got ${limit}`);
    }
  });
});
