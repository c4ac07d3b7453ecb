import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../storage/errors.js';

/**
 * transient: retry later (the store or the path to it is unwell).
 * permanent: this write can never succeed; dead-letter it, keep the queue moving.
 * configuration: the store is set up wrongly; keep everything queued and tell the operator.
 */
export type FailureKind = 'transient' | 'permanent' | 'configuration';

export function classifyFailure(error: unknown): FailureKind {
  // An adapter's explicit classification wins over any code or status the error also carries.
  if (error instanceof TransientStorageError) return 'transient';
  if (error instanceof PermanentStorageError) return 'permanent';
  if (error instanceof StorageConfigurationError) return 'configuration';
  if (!(error instanceof Error)) return 'transient';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT')) return 'permanent';
  const status = (error as { status?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number') {
    if (status === 408 || status === 429 || status >= 500) return 'transient';
    if (status === 401 || status === 403) return 'configuration';
    if (status >= 400) return 'permanent';
  }
  // Everything else is transient: network errors (ECONNRESET, ETIMEDOUT, UND_ERR_*), SQLite busy,
  // locked, full and I/O errors, aborts and timeouts, an open breaker, status 0 and 1xx-3xx, and
  // unknown failures. Those stay queued rather than being dead-lettered: retrying costs little, and
  // the breaker and health report make a persistent failure visible instead of silently parking data.
  return 'transient';
}

/** The delay a store asked for, if the error carries one. */
export function requestedDelayMs(error: unknown): number {
  return error instanceof TransientStorageError ? (error.retryAfterMs ?? 0) : 0;
}
