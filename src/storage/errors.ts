/** Errors an adapter throws so the cache knows whether to retry, dead-letter, or stop and tell an operator. */

/** The call may succeed if repeated: network failure, timeout, overload, 5xx, 408, 429. */
export class TransientStorageError extends Error {
  override readonly name = 'TransientStorageError';
  /** A delay the store asked for (e.g. HTTP Retry-After), in milliseconds. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, { cause: options?.cause });
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** Repeating the same call cannot succeed: constraint, validation, permission, other 4xx. */
export class PermanentStorageError extends Error {
  override readonly name = 'PermanentStorageError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The store is reachable but set up wrongly (missing migration, wrong key). No item is at fault,
 * so nothing is dead-lettered: the cache keeps the backlog, reports `offline`, and retries until an
 * operator fixes the configuration. The message says what to do.
 */
export class StorageConfigurationError extends Error {
  override readonly name = 'StorageConfigurationError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
