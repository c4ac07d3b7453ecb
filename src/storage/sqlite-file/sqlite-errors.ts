import Database from 'better-sqlite3';
import { isStorageError, StorageConfigurationError, TransientStorageError } from '../contract/errors.js';
import { kindForSqliteCode } from './sqlite-codes.js';

/**
 * How SQLite failures map onto the cache's retry policy.
 *
 * A call-level failure is never a `PermanentStorageError`: faults that belong to one item are
 * reported per item (see `isItemError`), so anything that fails the whole call is a property of the
 * store, and dead-lettering writes for it would punish innocent data.
 */

/**
 * Whether an error thrown while writing one item is that item's fault. better-sqlite3 throws
 * `TypeError`/`RangeError` before reaching SQLite when a value cannot be bound.
 */
export function isItemError(error: unknown): boolean {
  if (error instanceof Database.SqliteError) return kindForSqliteCode(error.code) === 'permanent';
  return error instanceof TypeError || error instanceof RangeError;
}

/** Wraps a call-level failure in the storage error class that tells the cache what to do. */
export function toStorageError(error: unknown, action: string, location: string): Error {
  if (isStorageError(error)) return error;
  if (error instanceof Database.SqliteError) {
    const detail = `SQLite store ${location}: ${action} failed with ${error.code} (${error.message})`;
    if (kindForSqliteCode(error.code) === 'configuration') {
      return new StorageConfigurationError(
        `${detail}; check that the file is writable, intact and not used by another program`,
        { cause: error },
      );
    }
    // Item codes at call level are the store's problem too (see above): retried, never dead-lettered.
    return new TransientStorageError(detail, { cause: error });
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
