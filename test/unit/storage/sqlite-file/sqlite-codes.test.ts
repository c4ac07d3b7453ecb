import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { isSqliteCode, kindForSqliteCode } from '../../../../src/storage/sqlite-file/sqlite-codes.js';
import {
  causeChain,
  isItemError,
  isNativeModuleFailure,
  toStorageError,
} from '../../../../src/storage/sqlite-file/sqlite-errors.js';

describe('what a SQLite result code means for the cache', () => {
  it.each([
    'SQLITE_READONLY',
    'SQLITE_CORRUPT',
    'SQLITE_NOTADB',
    'SQLITE_PERM',
    'SQLITE_AUTH',
    'SQLITE_FORMAT',
    'SQLITE_NOLFS',
    'SQLITE_ERROR',
  ])('%s: the file is unusable until someone acts (configuration), extended codes too', (code) => {
    expect(kindForSqliteCode(code)).toBe('configuration');
    expect(kindForSqliteCode(`${code}_SOMETHING`)).toBe('configuration');
  });

  it.each(['SQLITE_CONSTRAINT', 'SQLITE_MISMATCH', 'SQLITE_TOOBIG', 'SQLITE_RANGE'])(
    '%s: one write is at fault (permanent), extended codes too',
    (code) => {
      expect(kindForSqliteCode(code)).toBe('permanent');
      expect(kindForSqliteCode(`${code}_UNIQUE`)).toBe('permanent');
    },
  );

  it.each([
    'SQLITE_BUSY',
    'SQLITE_LOCKED',
    'SQLITE_IOERR_WRITE',
    'SQLITE_FULL',
    'SQLITE_NOMEM',
    'SQLITE_CANTOPEN',
    'SQLITE_SOMETHING_NEW',
  ])('%s: may succeed later (transient)', (code) => {
    expect(kindForSqliteCode(code)).toBe('transient');
  });

  it('recognises SQLite result codes by their prefix only', () => {
    expect(isSqliteCode('SQLITE_BUSY')).toBe(true);
    expect(isSqliteCode('ENOENT')).toBe(false);
    expect(isSqliteCode('sqlite_busy')).toBe(false);
    expect(isSqliteCode('')).toBe(false);
    expect(isSqliteCode(5)).toBe(false);
  });
});

describe('SQLite failures as storage errors', () => {
  const sqliteError = (code: string) => new Database.SqliteError(`failed with ${code}`, code);

  it('an error binding one value is that write’s fault; anything else is not', () => {
    expect(isItemError(new TypeError('cannot bind'))).toBe(true);
    expect(isItemError(new RangeError('too big'))).toBe(true);
    expect(isItemError(sqliteError('SQLITE_CONSTRAINT_UNIQUE'))).toBe(true);
    expect(isItemError(sqliteError('SQLITE_BUSY'))).toBe(false);
    expect(isItemError(new Error('disk I/O error'))).toBe(false);
    expect(isItemError('not an error')).toBe(false);
  });

  it('a call that fails on an unusable file is a configuration error; an item code at call level is retried', () => {
    expect(toStorageError(sqliteError('SQLITE_CORRUPT'), 'read', 'at x.db')).toMatchObject({
      kind: 'configuration',
    });
    expect(toStorageError(sqliteError('SQLITE_CONSTRAINT'), 'write', 'at x.db')).toMatchObject({
      kind: 'transient',
    });
    expect(toStorageError(new Error('odd'), 'write', 'at x.db')).toMatchObject({ kind: 'transient' });
  });

  it('follows an error’s causes, outermost first, and stops after eight', () => {
    const inner = { code: 'ERR_X', message: 'inner' };
    expect(causeChain(new Error('outer', { cause: inner }))).toEqual([expect.any(Error), inner]);
    expect(causeChain('text')).toEqual([]);
    expect(causeChain(null)).toEqual([]);
    let deep: { cause?: unknown } = {};
    for (let i = 0; i < 12; i++) deep = { cause: deep };
    expect(causeChain(deep)).toHaveLength(8);
    const cycle: { cause?: unknown } = {};
    cycle.cause = cycle;
    expect(causeChain(cycle)).toHaveLength(8);
  });

  it('tells a native addon that cannot load from other failures, anywhere in the causes', () => {
    const wrapped = (cause: unknown) => new Error('could not open the store', { cause });
    expect(isNativeModuleFailure(wrapped({ code: 'ERR_DLOPEN_FAILED', message: 'x' }))).toBe(true);
    expect(isNativeModuleFailure(wrapped(new Error('was compiled against NODE_MODULE_VERSION 127')))).toBe(
      true,
    );
    expect(isNativeModuleFailure(new Error('better_sqlite3.node: invalid ELF header'))).toBe(true);
    expect(isNativeModuleFailure(wrapped(new Error('SQLITE_CANTOPEN')))).toBe(false);
    expect(isNativeModuleFailure({ message: 42 })).toBe(false);
    expect(isNativeModuleFailure(undefined)).toBe(false);
  });
});
