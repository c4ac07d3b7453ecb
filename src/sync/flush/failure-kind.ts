import { declaredKind, type StorageErrorKind } from '../../storage/contract/errors.js';
import { kindForHttpStatus } from '../../storage/contract/http-status.js';
import { isSqliteCode, kindForSqliteCode } from '../../storage/sqlite-file/sqlite-codes.js';

/** What the cache does with a failed store call; see `StorageErrorKind`. */
export type FailureKind = StorageErrorKind;

export function classifyFailure(error: unknown): FailureKind {
  // An adapter's explicit `kind` wins over any code or status the error also carries. It is read as
  // a property, not by class, so errors from another copy of this package are classified too.
  const declared = error instanceof Error ? declaredKind(error) : undefined;
  if (declared) return declared;
  if (!(error instanceof Error)) return 'transient';
  const code = (error as { code?: unknown }).code;
  if (isSqliteCode(code)) return kindForSqliteCode(code);
  const status = (error as { status?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number') return kindForHttpStatus(status) ?? 'transient';
  // Everything else is transient: network errors (ECONNRESET, ETIMEDOUT, UND_ERR_*), aborts and
  // timeouts, an open breaker, status 0 and 1xx-3xx, and unknown failures. Those stay queued rather
  // than being dead-lettered: retrying costs little, and the breaker and health report make a
  // persistent failure visible instead of silently parking data.
  return 'transient';
}

/** The delay a store asked for, if the error carries one (read as a property, like `kind`). */
export function requestedDelayMs(error: unknown): number {
  if (declaredKind(error) !== 'transient') return 0;
  const retryAfterMs = (error as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs > 0
    ? retryAfterMs
    : 0;
}
