import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { PermanentStorageError, StorageConfigurationError, TransientStorageError } from './errors.js';
import { fromJsonbText, toJsonbText } from './jsonb-text.js';
import { classifyRpcError, MIGRATION_HINT, parseRetryAfter } from './supabase-errors.js';
import { DEFAULT_TOMBSTONE_RETENTION_MS, nonNegativeMs } from './tombstone-retention.js';
import type {
  ApplyResult,
  Storage,
  StorageCallOptions,
  StorageCleanupOptions,
  StoredEntry,
  VersionedWrite,
} from './types.js';

export interface SupabaseStorageCommonOptions {
  /** Schema the migration was applied to (sent as Content-Profile). Default `public`. */
  schema?: string;
}

export type SupabaseStorageOptions = SupabaseStorageCommonOptions &
  (
    | {
        /** Project URL, e.g. https://xyzcompany.supabase.co */
        url: string;
        /** The service role (secret) key. Server side only; never logged. */
        key: string;
        client?: never;
      }
    | { client: SupabaseClient; url?: never; key?: never }
  );

/** Names of the RPC functions shipped in supabase/migrations. */
export const SUPABASE_FUNCTIONS = {
  apply: 'apply_conversation_threads',
  get: 'get_conversation_threads',
  cleanup: 'cleanup_expired_threads',
  highWaterMark: 'conversation_threads_high_water_mark',
} as const;

interface GetRow {
  thread_id: string;
  version: number;
  data: string | null;
  expires_at_ms: number | null;
}

interface ApplyRow {
  idx: number;
  outcome: 'applied' | 'stale';
  stored_version: number | null;
}

/**
 * `Storage` over Supabase: every call is one PostgREST RPC (supabase-js `rpc()`) into the SQL
 * functions of the project's migration. Values travel as JSON text both ways; the database
 * stores them as jsonb (so key order and spacing of the JSON text are normalized).
 *
 * The adapter sets no deadline of its own: the caller's signal is the only one (the cache passes
 * one per call from `readTimeoutMs` / `writeTimeoutMs`). Called directly, pass
 * `{ signal: AbortSignal.timeout(ms) }`.
 */
export class SupabaseStorage implements Storage {
  readonly #client: SupabaseClient;
  readonly #schema: string;
  /** `Retry-After` of the last response per call, keyed by the call's signal (own clients only). */
  readonly #retryAfter = new WeakMap<AbortSignal, number>();

  constructor(options: SupabaseStorageOptions) {
    this.#schema = options.schema ?? 'public';
    if (options.client) {
      this.#client = options.client;
    } else {
      if (!options.url || !options.key) {
        throw new StorageConfigurationError(
          'SupabaseStorage needs { url, key } (service role key) or { client }',
        );
      }
      this.#client = createClient(options.url, options.key, {
        auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        global: { fetch: this.#fetch },
      });
    }
  }

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    const found = new Map<string, StoredEntry>();
    if (keys.length === 0) return found;
    const data = await this.#rpc(SUPABASE_FUNCTIONS.get, { p_thread_ids: [...new Set(keys)] }, opts);
    if (!Array.isArray(data)) throw unexpectedShape(SUPABASE_FUNCTIONS.get);
    for (const row of data as GetRow[]) {
      if (!isGetRow(row)) throw unexpectedShape(SUPABASE_FUNCTIONS.get);
      found.set(row.thread_id, {
        version: row.version,
        json: row.data === null ? null : fromJsonbText(row.data),
        expiresAt: row.expires_at_ms,
      });
    }
    return found;
  }

  async apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    const results: ApplyResult[] = new Array(writes.length);
    const positions: number[] = [];
    const payload: Record<string, unknown>[] = [];
    writes.forEach((write, i) => {
      const problem = invalidWrite(write);
      if (problem) {
        results[i] = {
          status: 'rejected',
          error: new PermanentStorageError(`${problem} (key ${write.key})`),
        };
        return;
      }
      positions.push(i);
      payload.push({
        thread_id: write.key,
        version: write.version,
        data: write.json === null ? null : toJsonbText(write.json),
        expires_at_ms: write.expiresAt,
      });
    });
    if (payload.length === 0) return results;

    // A permanent failure fails the call as a whole, even for one write: the cache splits batches
    // down to single writes and dead-letters the one that still fails.
    const data = await this.#rpc(SUPABASE_FUNCTIONS.apply, { p_writes: payload }, opts);
    if (!Array.isArray(data) || data.length !== payload.length)
      throw unexpectedShape(SUPABASE_FUNCTIONS.apply);
    for (const row of data as ApplyRow[]) {
      const position = isApplyRow(row) ? positions[row.idx] : undefined;
      const write = position === undefined ? undefined : writes[position];
      if (position === undefined || !write) throw unexpectedShape(SUPABASE_FUNCTIONS.apply);
      results[position] =
        row.outcome === 'applied'
          ? { status: 'applied' }
          : row.stored_version !== null && row.stored_version >= write.version
            ? { status: 'stale', storedVersion: row.stored_version }
            : { status: 'stale' };
    }
    return results;
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    const data = await this.#rpc(SUPABASE_FUNCTIONS.highWaterMark, {}, opts);
    if (!Number.isSafeInteger(data) || (data as number) < 0) {
      throw unexpectedShape(SUPABASE_FUNCTIONS.highWaterMark);
    }
    return data as number;
  }

  /**
   * Runs the migration's `cleanup_expired_threads()`: deletes expired rows and tombstones deleted
   * longer than `tombstoneRetentionMs` ago (default `DEFAULT_TOMBSTONE_RETENTION_MS`). Returns how
   * many rows went.
   */
  async cleanup(opts?: StorageCleanupOptions): Promise<number> {
    const retentionMs = nonNegativeMs(opts?.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS);
    const args = { p_tombstone_retention: `${Math.floor(retentionMs)} milliseconds` };
    const data = await this.#rpc(SUPABASE_FUNCTIONS.cleanup, args, opts);
    if (typeof data !== 'number') throw unexpectedShape(SUPABASE_FUNCTIONS.cleanup);
    return data;
  }

  async close(): Promise<void> {}

  async #rpc(fn: string, args: Record<string, unknown>, opts?: StorageCallOptions): Promise<unknown> {
    const callerSignal = opts?.signal;
    callerSignal?.throwIfAborted();
    // Its own signal even without a caller's: it keys the response's Retry-After (see #fetch).
    const signal = callerSignal ? AbortSignal.any([callerSignal]) : new AbortController().signal;
    let response: {
      data: unknown;
      error: { code?: string; message?: string; details?: string } | null;
      status: number;
    };
    try {
      response = await this.#client.schema(this.#schema).rpc(fn, args).abortSignal(signal);
    } catch (error) {
      // supabase-js reports failures in the result; this only catches its own bugs or a custom fetch that throws oddly.
      callerSignal?.throwIfAborted();
      throw new TransientStorageError(`Supabase RPC ${fn} failed: ${String(error)}`, { cause: error });
    }
    if (!response.error) return response.data;
    callerSignal?.throwIfAborted();
    if (response.status === 0) {
      throw new TransientStorageError(`Supabase RPC ${fn} failed: ${networkFailure(response.error)}`, {
        cause: response.error,
      });
    }
    throw classifyRpcError(fn, response.status, response.error, this.#retryAfter.get(signal));
  }

  /** The fetch given to supabase-js: remembers each response's Retry-After for error mapping. */
  readonly #fetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    const signal = init?.signal;
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
    if (signal && retryAfter !== undefined) this.#retryAfter.set(signal, retryAfter);
    return response;
  };
}

/** supabase-js puts the fetch error's cause (e.g. `ECONNRESET`) into `details`. */
function networkFailure(error: { message?: string; details?: string }): string {
  const cause = /Caused by: ([^\n]*)/.exec(error.details ?? '')?.[1];
  return `network failure (${error.message ?? 'fetch failed'}${cause ? `; ${cause}` : ''})`;
}

function unexpectedShape(fn: string): StorageConfigurationError {
  return new StorageConfigurationError(
    `Supabase RPC ${fn} answered in an unexpected shape: the database's functions do not match this version of hybrid-cache. ${MIGRATION_HINT}`,
  );
}

function isGetRow(row: unknown): row is GetRow {
  if (typeof row !== 'object' || row === null) return false;
  const r = row as Record<string, unknown>;
  return (
    typeof r.thread_id === 'string' &&
    Number.isSafeInteger(r.version) &&
    (r.data === null || typeof r.data === 'string') &&
    (r.expires_at_ms === null || Number.isSafeInteger(r.expires_at_ms))
  );
}

function isApplyRow(row: unknown): row is ApplyRow {
  if (typeof row !== 'object' || row === null) return false;
  const r = row as Record<string, unknown>;
  return (
    Number.isInteger(r.idx) &&
    (r.outcome === 'applied' || r.outcome === 'stale') &&
    (r.stored_version === null || Number.isSafeInteger(r.stored_version))
  );
}

/** Why a write can never be stored, or undefined if it is fine. */
function invalidWrite(write: VersionedWrite): string | undefined {
  if (typeof write.key !== 'string' || write.key.length === 0) return 'invalid key';
  if (!Number.isSafeInteger(write.version) || write.version < 0) return 'invalid version';
  if (write.expiresAt !== null && !Number.isFinite(write.expiresAt)) return 'invalid expiresAt';
  if (write.json !== null && typeof write.json !== 'string') return 'invalid json';
  return undefined;
}
