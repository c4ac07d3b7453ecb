import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../contract/errors.js';
import { logFloorProblem } from '../contract/log-floor.js';
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  nonNegativeMs,
  retentionInterval,
} from '../contract/tombstone-retention.js';
import {
  type AppendWrite,
  type ApplyResult,
  compareItems,
  type FeedPage,
  type FeedReadOptions,
  isAppend,
  type LogItem,
  type Storage,
  type StorageCallOptions,
  type StorageCleanupOptions,
  type StoredEntry,
  type ValueWrite,
  type VersionedWrite,
} from '../contract/types.js';
import { fromJsonbText, toJsonbText } from './jsonb-text.js';
import { classifyRpcError, MIGRATION_HINT, parseRetryAfter } from './supabase-errors.js';
import { readFeedPage } from './supabase-feed.js';

export interface SupabaseStorageCommonOptions {
  /**
   * The table this store reads and writes, through the SQL functions its migration ships
   * (supabase/migrations). Default `hybrid_cache_entries`, the general-purpose table;
   * `conversation_threads` is the conversation store's table, which the daemon uses.
   */
  table?: SupabaseTable;
  /** Schema the migration was applied to (sent as Content-Profile). Default `public`. */
  schema?: string;
  /**
   * How long `cleanup` keeps the change feed; a follower that reads less often is answered
   * `reset`. Default: the SQL cleanup function's own, equal to `DEFAULT_FEED_RETENTION_MS` (1 hour).
   */
  feedRetentionMs?: number;
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

/** How each table's migration names its RPC functions and the key in their JSON. */
export const SUPABASE_TABLES = {
  hybrid_cache_entries: {
    keyField: 'key',
    keysParam: 'p_keys',
    functions: {
      write: 'hybrid_cache_write',
      apply: 'hybrid_cache_apply',
      append: 'hybrid_cache_append',
      get: 'hybrid_cache_get',
      getWithItems: 'hybrid_cache_get_with_items',
      cleanup: 'hybrid_cache_cleanup',
      highWaterMark: 'hybrid_cache_high_water_mark',
      changes: 'hybrid_cache_changes',
    },
  },
  conversation_threads: {
    keyField: 'thread_id',
    keysParam: 'p_thread_ids',
    functions: {
      write: 'write_conversation_threads',
      apply: 'apply_conversation_threads',
      append: 'append_conversation_turns',
      get: 'get_conversation_threads',
      getWithItems: 'get_conversation_threads_with_turns',
      cleanup: 'cleanup_expired_threads',
      highWaterMark: 'conversation_threads_high_water_mark',
      changes: 'conversation_threads_changes',
    },
  },
} as const;

export type SupabaseTable = keyof typeof SUPABASE_TABLES;

type TableSchema = (typeof SUPABASE_TABLES)[SupabaseTable];

interface GetRow {
  key: string;
  version: number;
  data: string | null;
  expires_at_ms: number | null;
}

/** The writes of one kind sent in a call: where each sits in the batch, and its JSON. */
interface Call {
  positions: number[];
  payload: Record<string, unknown>[];
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
  readonly #table: TableSchema;
  readonly #feedRetentionMs: number | undefined;
  /** `Retry-After` of the last response per call, keyed by the call's signal (own clients only). */
  readonly #retryAfter = new WeakMap<AbortSignal, number>();

  constructor(options: SupabaseStorageOptions) {
    this.#schema = options.schema ?? 'public';
    const table = options.table ?? 'hybrid_cache_entries';
    if (!Object.hasOwn(SUPABASE_TABLES, table)) {
      throw new StorageConfigurationError(
        `SupabaseStorage table must be one of ${Object.keys(SUPABASE_TABLES).join(', ')}; got ${String(table)}`,
      );
    }
    this.#table = SUPABASE_TABLES[table];
    this.#feedRetentionMs =
      options.feedRetentionMs === undefined
        ? undefined
        : nonNegativeMs(options.feedRetentionMs, 'feedRetentionMs');
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
    const { functions, keyField, keysParam } = this.#table;
    const fn = functions.getWithItems;
    const data = await this.#rpc(fn, { [keysParam]: [...new Set(keys)] }, opts);
    if (!Array.isArray(data)) throw unexpectedShape(fn);
    for (const raw of data as unknown[]) {
      const row = getRow(raw, keyField);
      const items = row && logItems((raw as { items?: unknown }).items);
      if (!row || items === undefined) throw unexpectedShape(fn);
      const entry: StoredEntry = {
        version: row.version,
        json: row.data === null ? null : fromJsonbText(row.data),
        expiresAt: row.expires_at_ms,
      };
      // The one order every reader sees, whatever the database's collation.
      if (items.length > 0) entry.items = items.sort(compareItems);
      found.set(row.key, entry);
    }
    return found;
  }

  /**
   * One RPC per batch: the table's write function applies the values (each with its log floor, in
   * the same upsert), then the appended items, in one transaction.
   */
  async apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    const results: ApplyResult[] = new Array(writes.length);
    const values: Call = { positions: [], payload: [] };
    const appends: Call = { positions: [], payload: [] };
    const keyField = this.#table.keyField;
    writes.forEach((write, i) => {
      const problem = invalidWrite(write);
      if (problem) {
        results[i] = {
          status: 'rejected',
          error: new PermanentStorageError(`${problem} (key ${write.key})`),
        };
        return;
      }
      if (isAppend(write)) {
        appends.positions.push(i);
        appends.payload.push(appendPayload(keyField, write));
      } else {
        values.positions.push(i);
        values.payload.push(valuePayload(keyField, write));
      }
    });
    if (values.payload.length + appends.payload.length === 0) return results;
    // A permanent failure fails the call as a whole, even for one write: the cache splits batches
    // down to single writes and dead-letters the one that still fails.
    const fn = this.#table.functions.write;
    const data = await this.#rpc(fn, { p_writes: values.payload, p_appends: appends.payload }, opts);
    // Rows number the values first, then the appends, as sent.
    const positions = [...values.positions, ...appends.positions];
    if (!Array.isArray(data) || data.length !== positions.length) throw unexpectedShape(fn);
    for (const row of data as ApplyRow[]) {
      const position = isApplyRow(row) ? positions[row.idx] : undefined;
      const write = position === undefined ? undefined : writes[position];
      if (position === undefined || !write) throw unexpectedShape(fn);
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
    const data = await this.#rpc(this.#table.functions.highWaterMark, {}, opts);
    if (!Number.isSafeInteger(data) || (data as number) < 0) {
      throw unexpectedShape(this.#table.functions.highWaterMark);
    }
    return data as number;
  }

  /**
   * Runs the table's cleanup function: deletes expired rows and tombstones minted longer than
   * `tombstoneRetentionMs` ago, by their version's time (default `DEFAULT_TOMBSTONE_RETENTION_MS`),
   * and prunes the change feed (see `feedRetentionMs`). Returns how many rows went, feed not counted.
   */
  async cleanup(opts?: StorageCleanupOptions): Promise<number> {
    const args: Record<string, string> = {
      p_tombstone_retention: retentionInterval(opts?.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS),
    };
    // Sent only when configured, so a database migrated before the feed still takes the call.
    if (this.#feedRetentionMs !== undefined) args.p_feed_retention = retentionInterval(this.#feedRetentionMs);
    const data = await this.#rpc(this.#table.functions.cleanup, args, opts);
    if (typeof data !== 'number') throw unexpectedShape(this.#table.functions.cleanup);
    return data;
  }

  /** The table's change feed, read through its SQL function (see `readFeedPage`). */
  changes(after: string | null, opts?: FeedReadOptions): Promise<FeedPage> {
    return readFeedPage(
      (fn, args, callOpts) => this.#rpc(fn, args, callOpts),
      this.#table.functions.changes,
      after,
      opts,
    );
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

/** A row of the get function, its key read from the table's key column; undefined if malformed. */
function getRow(row: unknown, keyField: TableSchema['keyField']): GetRow | undefined {
  if (typeof row !== 'object' || row === null) return undefined;
  const r = row as Record<string, unknown>;
  const key = r[keyField];
  const valid =
    typeof key === 'string' &&
    Number.isSafeInteger(r.version) &&
    (r.data === null || typeof r.data === 'string') &&
    (r.expires_at_ms === null || Number.isSafeInteger(r.expires_at_ms));
  if (!valid) return undefined;
  return {
    key,
    version: r.version as number,
    data: r.data as string | null,
    expires_at_ms: r.expires_at_ms as number | null,
  };
}

function valuePayload(keyField: string, write: ValueWrite): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    [keyField]: write.key,
    version: write.version,
    data: write.json === null ? null : toJsonbText(write.json),
    expires_at_ms: write.expiresAt,
  };
  if (write.logFloor) payload.log_floor = write.logFloor;
  // Read by the functions of *_log_floor_at_write_time.sql; earlier ones ignore it.
  if (write.writtenAt !== undefined) payload.written_at_ms = write.writtenAt;
  if (write.firstVersion !== undefined) payload.first_version = write.firstVersion;
  return payload;
}

function appendPayload(keyField: string, write: AppendWrite): Record<string, unknown> {
  return {
    [keyField]: write.key,
    version: write.version,
    expires_at_ms: write.expiresAt,
    appended_at_ms: write.appendedAt,
    items: write.items.map((item) => ({ id: item.id, version: item.version, data: toJsonbText(item.json) })),
  };
}

/** The items column of a read (null: none); undefined if malformed. */
function logItems(raw: unknown): LogItem[] | undefined {
  if (raw === null || raw === undefined) return [];
  if (!Array.isArray(raw)) return undefined;
  const items: LogItem[] = [];
  for (const entry of raw as unknown[]) {
    const r = entry as Record<string, unknown> | null;
    if (!r || typeof r.id !== 'string' || !Number.isSafeInteger(r.version) || typeof r.data !== 'string') {
      return undefined;
    }
    items.push({ id: r.id, version: r.version as number, json: fromJsonbText(r.data) });
  }
  return items;
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
  if (!isAppend(write)) return logFloorProblem(write);
  if (!Array.isArray(write.items) || write.items.length === 0) return 'invalid items';
  if (!Number.isFinite(write.appendedAt)) return 'invalid appendedAt';
  for (const item of write.items) {
    if (typeof item.id !== 'string' || item.id.length === 0) return 'invalid item id';
    if (!Number.isSafeInteger(item.version) || item.version < 0) return 'invalid item version';
    if (typeof item.json !== 'string') return 'invalid item json';
  }
  return undefined;
}
