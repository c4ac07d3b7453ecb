import { describe, expect, it } from 'vitest';
import {
  appliedLogFloor,
  hasEnded,
  itemsAboveFloor,
  logFloorProblem,
  NO_LOG_FLOOR,
  storedHasEnded,
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
    const live = { version: 5, ended: false };
    const ended = { version: 5, ended: true };
    expect(appliedLogFloor({ version: 50, json: null, logFloor: 10 }, live)).toBe(50);
    expect(appliedLogFloor({ version: 50, json: '1', logFloor: 10 }, live)).toBe(10);
    expect(appliedLogFloor({ version: 50, json: '1' }, ended)).toBe(49);
    expect(appliedLogFloor({ version: 50, json: '1' }, live)).toBe(NO_LOG_FLOOR);
    expect(appliedLogFloor({ version: 50, json: '1' }, undefined)).toBe(NO_LOG_FLOOR);
  });

  it('a value over an ended one that says where its new log started keeps the items appended since', () => {
    // Coalesced over the value at 11 that started the log: items from 11 on belong to it.
    expect(appliedLogFloor({ version: 50, json: '1', logFloor: 10 }, { version: 5, ended: true })).toBe(10);
    // The first write it coalesced says where the new log started, when the writer knew no more.
    expect(appliedLogFloor({ version: 50, json: '1', firstVersion: 30 }, { version: 5, ended: true })).toBe(
      29,
    );
    expect(appliedLogFloor({ version: 50, json: '1', firstVersion: 30 }, { version: 5, ended: false })).toBe(
      0,
    );
    // Never below the ended value itself.
    expect(appliedLogFloor({ version: 50, json: '1', logFloor: 10 }, { version: 20, ended: true })).toBe(20);
  });

  it('judges a stored value ended at the time the write was made, not when it arrives', () => {
    const value = { json: '"v"', expiresAt: 1_000 };
    expect(storedHasEnded(value, { writtenAt: 999 }, 5_000)).toBe(false);
    expect(storedHasEnded(value, { writtenAt: 1_000 }, 5_000)).toBe(true);
    expect(storedHasEnded(value, {}, 5_000)).toBe(true); // a write that does not say: now
    expect(storedHasEnded(value, {}, 999)).toBe(false);
    expect(storedHasEnded({ json: null, expiresAt: null }, { writtenAt: 1 }, 1)).toBe(true);
  });

  it('keeps only the items above the floor (the floor itself has ended)', () => {
    const items = [{ version: 1 }, { version: 5 }, { version: 6 }];
    expect(itemsAboveFloor(items, 5)).toEqual([{ version: 6 }]);
    expect(itemsAboveFloor(items, NO_LOG_FLOOR)).toBe(items);
    expect(itemsAboveFloor(items, 0.5)).toBe(items);
    // No floor keeps every item, even one at version 0.
    const fromZero = [{ version: 0 }, { version: 3 }];
    expect(itemsAboveFloor(fromZero, NO_LOG_FLOOR)).toBe(fromZero);
  });

  it('accepts a first version that is a positive safe integer up to the write’s own, or none', () => {
    expect(logFloorProblem({ version: 10, firstVersion: 1 })).toBeUndefined();
    expect(logFloorProblem({ version: 10, firstVersion: 10 })).toBeUndefined();
    expect(logFloorProblem({ version: 10, firstVersion: 10, logFloor: 9 })).toBeUndefined();
    for (const firstVersion of [0, -1, 11, 1.5, Number.NaN, 2 ** 53]) {
      expect(logFloorProblem({ version: 10, firstVersion }), String(firstVersion)).toBe(
        'invalid firstVersion',
      );
    }
    // The first version is checked before the floor.
    expect(logFloorProblem({ version: 10, firstVersion: 0, logFloor: 20 })).toBe('invalid firstVersion');
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
