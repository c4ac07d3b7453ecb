/** Typed errors thrown by the cache. Each has a stable `name` and `code` for callers that switch on them. */
import { HybridCacheError } from '../sync/errors.js';

export { ClockError, ClosedError, HybridCacheError, OutboxError } from '../sync/errors.js';

/** Bad input: key, value or TTL. Nothing was changed. */
export class ValidationError extends HybridCacheError {
  constructor(message: string) {
    super('ERR_VALIDATION', message);
  }
}

/** A value larger than `maxValueBytes` once serialized. Nothing was changed. */
export class ValueTooLargeError extends ValidationError {
  constructor(
    readonly bytes: number,
    readonly maxValueBytes: number,
  ) {
    super(`value is ${bytes} bytes serialized; the limit (maxValueBytes) is ${maxValueBytes}`);
  }
}

/** The backlog of unflushed writes is full (`maxPendingBytes`). Nothing was changed; retry later. */
export class BackpressureError extends HybridCacheError {
  constructor(
    message: string,
    readonly pendingBytes: number,
    readonly maxPendingBytes: number,
  ) {
    super('ERR_BACKPRESSURE', message);
  }
}

/** A read missed memory and the store could not answer (unreachable, timed out, or breaker open). */
export class StorageUnavailableError extends HybridCacheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STORAGE_UNAVAILABLE', message, options);
  }
}

/** `flush()` reached its deadline. Nothing is lost: the writes stay pending and keep flushing. */
export class FlushTimeoutError extends HybridCacheError {
  constructor(readonly pending: number) {
    super('ERR_FLUSH_TIMEOUT', `flush timed out with ${pending} write(s) still pending; they remain queued`);
  }
}

/**
 * A stored value is not valid JSON (damaged on disk, or written by something other than this
 * library). Nothing was cached: every read asks the store again, so a repaired or overwritten value
 * is seen at once. `set` or `delete` the key to replace it.
 */
export class CorruptValueError extends HybridCacheError {
  constructor(
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(
      'ERR_CORRUPT_VALUE',
      `the stored value of key ${JSON.stringify(key)} is damaged (not valid JSON) and cannot be read; overwrite or delete the key`,
      options,
    );
  }
}
