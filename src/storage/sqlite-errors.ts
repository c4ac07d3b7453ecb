import Database from 'better-sqlite3';
import { PermanentStorageError, StorageConfigurationError, TransientStorageError } from './errors.js';

/**
 * How SQLite failures map onto the cache's retry policy.
 *
 * A call-level failure is never a `PermanentStorageError`: faults that belong to one item are
 * reported per item (see `isItemError`), so anything that fails the whole call is a property of the
 * store, and dead-lettering writes for it would punish innocent data.
 */

/** Contention, I/O and space problems: the same call can succeed later (lock released, disk freed). */
const TRANSIENT_CODES = new Set([
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'SQLITE_NOMEM',
  'SQLITE_PROTOCOL',
  'SQLITE_CANTOPEN',
  'SQLITE_INTERRUPT',
  'SQLITE_SCHEMA',
]);

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
function primaryCode(error: InstanceType<typeof Database.SqliteError>): string {
  return error.code.split('_').slice(0, 2).join('_');
}

/**
 * Whether an error thrown while writing one item is that item's fault. better-sqlite3 throws
 * `TypeError`/`RangeError` before reaching SQLite when a value cannot be bound.
 */
export function isItemError(error: unknown): boolean {
  if (error instanceof Database.SqliteError) return ITEM_CODES.has(primaryCode(error));
  return error instanceof TypeError || error instanceof RangeError;
}

/** Wraps a call-level failure in the storage error class that tells the cache what to do. */
export function toStorageError(error: unknown, action: string, location: string): Error {
  if (
    error instanceof TransientStorageError ||
    error instanceof StorageConfigurationError ||
    error instanceof PermanentStorageError
  ) {
    return error;
  }
  if (error instanceof Database.SqliteError) {
    const code = primaryCode(error);
    const detail = `SQLite store ${location}: ${action} failed with ${error.code} (${error.message})`;
    if (CONFIGURATION_CODES.has(code)) {
      return new StorageConfigurationError(
        `${detail}; check that the file is writable, intact and not used by another program`,
        { cause: error },
      );
    }
    if (TRANSIENT_CODES.has(code)) return new TransientStorageError(detail, { cause: error });
  }
  // Unknown failures are retried rather than dead-lettered: the writes stay in the outbox.
  const message = error instanceof Error ? error.message : String(error);
  return new TransientStorageError(`SQLite store ${location}: ${action} failed: ${message}`, {
    cause: error,
  });
}
