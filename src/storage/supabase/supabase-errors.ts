import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../contract/errors.js';
import { kindForHttpStatus } from '../contract/http-status.js';

/** The error object supabase-js (postgrest-js) returns instead of throwing. */
export interface PostgrestErrorLike {
  code?: string | null;
  message?: string | null;
  details?: string | null;
  hint?: string | null;
}

export const MIGRATION_HINT =
  "Apply every file in supabase/migrations/ from the hybrid-cache package to the project, in order (`supabase db push`, or run each in the SQL editor), then reload PostgREST's schema cache with: NOTIFY pgrst, 'reload schema';";

export const KEY_HINT =
  "Use the project's service_role (secret) key, on the server only, never the anon/publishable key; and make sure the migration's GRANT statements were applied.";

function describe(fn: string, status: number, error: PostgrestErrorLike): string {
  const code = error.code ? ` ${error.code}` : '';
  const message = error.message ? `: ${error.message}` : '';
  return `Supabase RPC ${fn} failed (HTTP ${status}${code})${message}`;
}

/**
 * Maps a failed PostgREST answer to the adapter's error types. The status decides (see
 * `kindForHttpStatus`), except that a few PostgREST codes of a 4xx answer are setup problems the
 * operator must fix: function missing from the schema cache (PGRST202, or the function or table
 * missing at run time), schema not exposed (PGRST106), ambiguous overloads (300, PGRST203).
 */
export function classifyRpcError(
  fn: string,
  status: number,
  error: PostgrestErrorLike,
  retryAfterMs?: number,
): TransientStorageError | PermanentStorageError | StorageConfigurationError {
  const code = error.code ?? '';
  const what = describe(fn, status, error);
  const kind = kindForHttpStatus(status);
  if (kind === 'transient') {
    return new TransientStorageError(what, {
      cause: error,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
  if (code === 'PGRST202' || code === 'PGRST205' || code === '42883' || code === '42P01') {
    return new StorageConfigurationError(
      `${what}. The hybrid-cache functions are missing from the database or from PostgREST's schema cache. ${MIGRATION_HINT}`,
      { cause: error },
    );
  }
  if (kind === 'configuration') {
    return new StorageConfigurationError(`${what}. The key is not allowed to call ${fn}. ${KEY_HINT}`, {
      cause: error,
    });
  }
  if (code === 'PGRST106') {
    return new StorageConfigurationError(
      `${what}. The schema is not exposed by the project's Data API: use the schema the migration was applied to (default: public) and list it under API settings > Exposed schemas.`,
      { cause: error },
    );
  }
  if (status === 300 || code === 'PGRST203') {
    return new StorageConfigurationError(
      `${what}. Several functions match this call; drop the conflicting overloads. ${MIGRATION_HINT}`,
      { cause: error },
    );
  }
  return new PermanentStorageError(what, { cause: error });
}

/** `Retry-After` (delta-seconds or HTTP date) in milliseconds, if present and sensible. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
