import { describe, expect, it } from 'vitest';
import { retryWhileBusy } from '../../../../src/storage/sqlite-file/while-busy.js';

const sqliteError = (code: string) => Object.assign(new Error(code.toLowerCase()), { code });

describe('retryWhileBusy', () => {
  it('runs the step again while SQLite answers busy, and returns what it finally returns', () => {
    const codes = ['SQLITE_BUSY', 'SQLITE_BUSY_RECOVERY'];
    let calls = 0;
    const result = retryWhileBusy(() => {
      calls++;
      const code = codes.shift();
      if (code) throw sqliteError(code);
      return 'opened';
    }, 1_000);
    expect(result).toBe('opened');
    expect(calls).toBe(3);
  });

  it('lets any other error through at once', () => {
    let calls = 0;
    expect(() =>
      retryWhileBusy(() => {
        calls++;
        throw sqliteError('SQLITE_CORRUPT');
      }, 1_000),
    ).toThrow('sqlite_corrupt');
    expect(calls).toBe(1);
  });

  it('gives up once the timeout has passed, with the last busy error', () => {
    let clock = 0;
    let calls = 0;
    expect(() =>
      retryWhileBusy(
        () => {
          calls++;
          clock += 40;
          throw sqliteError('SQLITE_BUSY');
        },
        100,
        () => clock,
      ),
    ).toThrow('sqlite_busy');
    // Tried at 40, 80 and 120 ms of its clock: the third was past the 100 ms allowed.
    expect(calls).toBe(3);
  });

  it('with no time allowed, tries once', () => {
    let calls = 0;
    expect(() =>
      retryWhileBusy(() => {
        calls++;
        throw sqliteError('SQLITE_BUSY');
      }, 0),
    ).toThrow('sqlite_busy');
    expect(calls).toBe(1);
  });
});
