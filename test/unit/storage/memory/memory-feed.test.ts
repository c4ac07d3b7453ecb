import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStorage } from '../../../../src/storage/memory/memory-storage.js';
import { appended, item } from '../../../../src/testing/writes.js';
import { put, tombstone } from '../../../helpers/writes.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('MemoryStorage change feed', () => {
  it('lists each applied write once, in apply order, and nothing for stale writes or re-sent items', async () => {
    const storage = new MemoryStorage();
    const head = await storage.changes(null);
    expect(head).toMatchObject({ changes: [], reset: false, more: false });
    const [x, y] = [item(30, 'x'), item(40, 'y')];
    await storage.apply([put('a', 10, 'a'), put('a', 5, 'stale'), tombstone('b', 20)]);
    await storage.apply([appended('a', [x]), appended('a', [x]), appended('a', [y, x])]);
    const first = await storage.changes(head.cursor, { limit: 2 });
    expect(first).toMatchObject({
      more: true,
      changes: [
        { key: 'a', version: 10 },
        { key: 'b', version: 20 },
      ],
    });
    const rest = await storage.changes(first.cursor, { limit: 2 });
    expect(rest).toMatchObject({
      more: false,
      changes: [
        { key: 'a', version: 30, itemId: x.id },
        { key: 'a', version: 40, itemId: y.id },
      ],
    });
    expect(await storage.changes(rest.cursor)).toMatchObject({
      changes: [],
      more: false,
      cursor: rest.cursor,
    });
  });

  it('resets a cursor of another instance, one ahead of its head, or one that names another write', async () => {
    const storage = new MemoryStorage();
    await storage.apply([put('a', 10, 'a')]);
    const { epoch, cursor } = await storage.changes(null);
    expect(cursor).toBe(`${epoch}:1:10`);
    const other = await new MemoryStorage().changes(null);
    expect(other.epoch).not.toBe(epoch);
    for (const foreign of [other.cursor, `${epoch}:2:10`, `${epoch}:1:11`, `${epoch}:-1:0`]) {
      expect(await storage.changes(foreign)).toEqual({
        epoch,
        cursor,
        changes: [],
        reset: true,
        more: false,
      });
    }
  });

  it('prunes changes past feedRetentionMs on cleanup, keeping the newest; a cursor before them resets', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.UTC(2026, 0, 1);
    vi.setSystemTime(start);
    const storage = new MemoryStorage({ feedRetentionMs: 60_000 });
    const beforeAll = (await storage.changes(null)).cursor;
    await storage.apply([put('a', 1, 'a')]);
    const afterA = (await storage.changes(null)).cursor;
    vi.setSystemTime(start + 1);
    await storage.apply([put('b', 2, 'b')]);

    vi.setSystemTime(start + 59_999);
    await storage.cleanup();
    expect((await storage.changes(beforeAll)).reset).toBe(false);
    vi.setSystemTime(start + 60_000);
    expect(await storage.cleanup()).toBe(0); // pruned changes are not counted
    expect((await storage.changes(beforeAll)).reset).toBe(true);
    // At the boundary every later change is still held; the newest is never pruned.
    expect((await storage.changes(afterA)).changes).toEqual([{ key: 'b', version: 2 }]);
    vi.setSystemTime(start + 3_600_000);
    const head = (await storage.changes(null)).cursor;
    await storage.cleanup();
    // b, the newest, stays however old: the head is always a cursor the store serves.
    expect((await storage.changes(afterA)).changes).toEqual([{ key: 'b', version: 2 }]);
    expect(await storage.changes(head)).toMatchObject({ reset: false, changes: [] });
    await storage.apply([put('c', 3, 'c')]);
    expect((await storage.changes(head)).changes).toEqual([{ key: 'c', version: 3 }]);
  });

  it('keeps changes for an hour by default', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.UTC(2026, 0, 1);
    vi.setSystemTime(start);
    const storage = new MemoryStorage();
    const head = (await storage.changes(null)).cursor;
    await storage.apply([put('a', 1, 'a'), put('b', 2, 'b')]);
    vi.setSystemTime(start + 3_599_999);
    await storage.cleanup();
    expect((await storage.changes(head)).changes).toHaveLength(2);
    vi.setSystemTime(start + 3_600_000);
    await storage.cleanup();
    expect((await storage.changes(head)).reset).toBe(true);
  });

  it('refuses a bad retention or page size', async () => {
    expect(() => new MemoryStorage({ feedRetentionMs: Number.NaN })).toThrow(RangeError);
    expect(() => new MemoryStorage({ feedRetentionMs: -1 })).toThrow(RangeError);
    await expect(new MemoryStorage().changes(null, { limit: 1.5 })).rejects.toThrow(RangeError);
  });
});

describe('MemoryStorage change feed origins', () => {
  it('leaves out the changes of the origin skipped, passing them with the cursor', async () => {
    const storage = new MemoryStorage();
    const head = await storage.changes(null);
    await storage.apply([put('a', 1, 1), put('b', 2, 2)], { origin: 'own' });
    await storage.apply([put('c', 3, 3)], { origin: 'other' });
    const first = await storage.changes(head.cursor, { limit: 2, skipOrigin: 'own' });
    expect(first).toMatchObject({ changes: [], more: true, reset: false });
    const second = await storage.changes(first.cursor, { limit: 2, skipOrigin: 'own' });
    expect(second).toMatchObject({ changes: [{ key: 'c', version: 3 }], more: false });
    // Passed, not postponed: a read without skipping from there has nothing of them.
    expect((await storage.changes(first.cursor)).changes).toEqual([{ key: 'c', version: 3 }]);
    expect((await storage.changes(second.cursor)).changes).toEqual([]);
    expect((await storage.changes(head.cursor, { skipOrigin: '' })).changes).toHaveLength(3);
  });
});
