import { BrokenCircuitError, TaskCancelledError } from 'cockatiel';
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

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_CANTOPEN',
]);

export function classifyFailure(error: unknown): FailureKind {
  if (error instanceof TransientStorageError) return 'transient';
  if (error instanceof PermanentStorageError) return 'permanent';
  if (error instanceof StorageConfigurationError) return 'configuration';
  if (error instanceof BrokenCircuitError || error instanceof TaskCancelledError) return 'transient';
  if (!(error instanceof Error)) return 'transient';
  if (error.name === 'AbortError' || error.name === 'TimeoutError') return 'transient';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (TRANSIENT_CODES.has(code) || code.startsWith('SQLITE_IOERR')) return 'transient';
    if (code.startsWith('SQLITE_CONSTRAINT')) return 'permanent';
  }
  const status = (error as { status?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status > 0) {
    if (status === 408 || status === 429 || status >= 500) return 'transient';
    if (status === 401 || status === 403) return 'configuration';
    if (status >= 400) return 'permanent';
  }
  // Unknown failures stay queued rather than being dead-lettered: retrying costs little, and the
  // breaker and health report make a persistent failure visible instead of silently parking data.
  return 'transient';
}

/** The delay a store asked for, if the error carries one. */
export function requestedDelayMs(error: unknown): number {
  return error instanceof TransientStorageError ? (error.retryAfterMs ?? 0) : 0;
}
