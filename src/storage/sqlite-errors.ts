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

/** An error and its causes, outermost first (bounded, in case of a cycle). */
export function causeChain(error: unknown): Array<{ code?: unknown; message?: unknown }> {
  const chain: Array<{ code?: unknown; message?: unknown }> = [];
  for (
    let e = error;
    e !== null && typeof e === 'object' && chain.length < 8;
    e = (e as { cause?: unknown }).cause
  ) {
    chain.push(e as { code?: unknown; message?: unknown });
  }
  return chain;
}

/**
 * better-sqlite3's native addon failed to load: built for another Node.js ABI, platform or libc.
 * Reported apart from file problems, since no change to the file can fix it.
 */
export function isNativeModuleFailure(error: unknown): boolean {
  return causeChain(error).some(
    (e) =>
      e.code === 'ERR_DLOPEN_FAILED' ||
      (typeof e.message === 'string' && /NODE_MODULE_VERSION|invalid ELF header/.test(e.message)),
  );
}

/** What to tell whoever started the process when the native addon cannot be loaded. */
export function nativeModuleMessage(error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  return (
    `the SQLite native module (better-sqlite3) cannot be loaded by Node.js ${process.version} ` +
    `(${process.platform}-${process.arch}): ${reason}. Reinstall dependencies with the Node.js that runs ` +
    'this process (rm -rf node_modules && npm ci)'
  );
}
