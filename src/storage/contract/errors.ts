/** Errors an adapter throws so the cache knows whether to retry, dead-letter, or stop and tell an operator. */

/**
 * What the cache does with a failed call:
 * - `transient`: retry later (the store or the path to it is unwell).
 * - `permanent`: this write can never succeed; dead-letter it, keep the queue moving.
 * - `configuration`: the store is set up wrongly; keep everything queued and tell the operator.
 *
 * The cache reads an error's `kind` property, not its class, so an adapter built against another
 * copy of this package (or one that throws its own error class with a `kind`) is classified alike.
 */
export type StorageErrorKind = 'transient' | 'permanent' | 'configuration';

/** The call may succeed if repeated: network failure, timeout, overload, 5xx, 408, 429. */
export class TransientStorageError extends Error {
  override readonly name = 'TransientStorageError';
  readonly kind = 'transient';
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
  readonly kind = 'permanent';
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
  readonly kind = 'configuration';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const KINDS: ReadonlySet<unknown> = new Set<StorageErrorKind>(['transient', 'permanent', 'configuration']);

/** The `kind` an error declares, if it declares a valid one. */
export function declaredKind(error: unknown): StorageErrorKind | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const kind = (error as { kind?: unknown }).kind;
  return KINDS.has(kind) ? (kind as StorageErrorKind) : undefined;
}

/** The error already says what the cache should do with it (see `StorageErrorKind`). */
export function isStorageError(
  error: unknown,
): error is TransientStorageError | PermanentStorageError | StorageConfigurationError {
  return error instanceof Error && declaredKind(error) !== undefined;
}
