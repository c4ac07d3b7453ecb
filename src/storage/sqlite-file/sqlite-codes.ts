import type { StorageErrorKind } from '../contract/errors.js';

/**
 * The one mapping from a SQLite result code to what the cache does with the failure. Pure (no
 * better-sqlite3 import), so the cache can classify raw SQLite errors without loading the addon.
 */

/** The file itself is unusable until an operator acts (permissions, corruption, wrong file, dropped table). */
const CONFIGURATION_CODES = new Set([
  'SQLITE_READONLY',
  'SQLITE_CORRUPT',
  'SQLITE_NOTADB',
  'SQLITE_PERM',
  'SQLITE_AUTH',
  'SQLITE_FORMAT',
  'SQLITE_NOLFS',
  'SQLITE_ERROR',
]);

/** Failures caused by the values of one write; the rest of its batch is unaffected. */
const ITEM_CODES = new Set(['SQLITE_CONSTRAINT', 'SQLITE_MISMATCH', 'SQLITE_TOOBIG', 'SQLITE_RANGE']);

/** `SQLITE_IOERR_WRITE` -> `SQLITE_IOERR`. */
export function primaryCode(code: string): string {
  return code.split('_').slice(0, 2).join('_');
}

/** Whether `code` looks like a SQLite result code (`SQLITE_…`). */
export function isSqliteCode(code: unknown): code is string {
  return typeof code === 'string' && code.startsWith('SQLITE_');
}

/**
 * `permanent` for codes that are one write's fault, `configuration` for an unusable file, and
 * `transient` for everything else: contention, I/O and space problems (BUSY, LOCKED, IOERR, FULL,
 * NOMEM, CANTOPEN, …) can succeed later, and unknown codes are retried rather than dead-lettered.
 */
export function kindForSqliteCode(code: string): StorageErrorKind {
  const primary = primaryCode(code);
  if (ITEM_CODES.has(primary)) return 'permanent';
  if (CONFIGURATION_CODES.has(primary)) return 'configuration';
  return 'transient';
}
