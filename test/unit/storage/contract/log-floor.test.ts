import { describe, expect, it } from 'vitest';
import {
  appliedLogFloor,
  hasEnded,
  itemsAboveFloor,
  logFloorProblem,
  NO_LOG_FLOOR,
  valueLogFloor,
} from '../../../../src/storage/contract/log-floor.js';
import { MemoryStorage } from '../../../../src/storage/memory/memory-storage.js';

describe('the log floor rules', () => {
  it('a deleted or expired value has ended its log; a live one, or one expiring later, has not', () => {
    expect(hasEnded({ deleted: true, expiresAt: null }, 100)).toBe(true);
    expect(hasEnded({ deleted: false, expiresAt: 100 }, 100)).toBe(true);
    expect(hasEnded({ deleted: false, expiresAt: 101 }, 100)).toBe(false);
    expect(hasEnded({ deleted: false, expiresAt: null }, 100)).toBe(false);
  });

  it('a value over an ended one starts a new log just below itself; otherwise it keeps the floor it carried', () => {
    expect(valueLogFloor(50, true)).toBe(49);
    expect(valueLogFloor(50, true, 30)).toBe(49);
    expect(valueLogFloor(50, false, 30)).toBe(30);
    expect(valueLogFloor(50, false)).toBe(NO_LOG_FLOOR);
  });

  it('a store takes a tombstone’s own version, or a value’s floor, or just below a value over an ended one', () => {
    expect(appliedLogFloor({ version: 50, json: null, logFloor: 10 }, false)).toBe(50);
    expect(appliedLogFloor({ version: 50, json: '1', logFloor: 10 }, false)).toBe(10);
    expect(appliedLogFloor({ version: 50, json: '1', logFloor: 10 }, true)).toBe(49);
    expect(appliedLogFloor({ version: 50, json: '1' }, false)).toBe(NO_LOG_FLOOR);
  });

  it('keeps only the items above the floor (the floor itself has ended)', () => {
    const items = [{ version: 1 }, { version: 5 }, { version: 6 }];
    expect(itemsAboveFloor(items, 5)).toEqual([{ version: 6 }]);
    expect(itemsAboveFloor(items, NO_LOG_FLOOR)).toBe(items);
    expect(itemsAboveFloor(items, 0.5)).toBe(items);
  });

  it('accepts a floor that is a safe integer below the version, or none', () => {
    expect(logFloorProblem({ version: 10 })).toBeUndefined();
    expect(logFloorProblem({ version: 10, logFloor: 0 })).toBeUndefined();
    expect(logFloorProblem({ version: 10, logFloor: 9 })).toBeUndefined();
    for (const logFloor of [10, 11, -1, 1.5, Number.NaN]) {
      expect(logFloorProblem({ version: 10, logFloor }), String(logFloor)).toBe('invalid logFloor');
    }
  });
});

describe('MemoryStorage and the log floor', () => {
  it('rejects a value whose log floor is not below its version, and changes nothing', async () => {
    const storage = new MemoryStorage();
    await storage.apply([{ key: 'k', version: 1, json: '1', expiresAt: null }]);
    const [result] = await storage.apply([{ key: 'k', version: 5, json: '5', expiresAt: null, logFloor: 7 }]);
    expect(result?.status === 'rejected' && result.error.message).toMatch(/invalid logFloor/);
    expect(storage.peek('k')?.version).toBe(1);
  });
});
