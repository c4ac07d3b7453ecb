/**
 * The error classes the write-behind half throws itself. They live here, below the cache, so both
 * halves can throw them; `src/cache/errors.ts` re-exports them with the rest of the public errors.
 */

/** Base of every error the library throws. Each has a stable `name` and `code` for callers that switch on them. */
export class HybridCacheError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The cache is closing or closed. */
export class ClosedError extends HybridCacheError {
  constructor(message = 'the cache is closed') {
    super('ERR_CLOSED', message);
  }
}

/** The local outbox could not be opened or written. */
export class OutboxError extends HybridCacheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_OUTBOX', message, options);
  }
}

/** The clock cannot mint a version: it would not be a safe integer. */
export class ClockError extends HybridCacheError {
  constructor(message: string) {
    super('ERR_CLOCK', message);
  }
}
