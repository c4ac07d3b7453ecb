import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { type Logger, pino } from 'pino';
import { StorageConfigurationError, TransientStorageError } from '../contract/errors.js';
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  nonNegativeMs,
  retentionInterval,
} from '../contract/tombstone-retention.js';
import type {
  ApplyOptions,
  ApplyResult,
  DoorbellRing,
  DoorbellState,
  FeedPage,
  FeedReadOptions,
  Storage,
  StorageCallOptions,
  StorageCleanupOptions,
  StoredEntry,
  VersionedWrite,
} from '../contract/types.js';
import {
  DEFAULT_DOORBELL_CHANNEL,
  PostgresDoorbell,
  type PostgresDoorbellOptions,
} from '../postgres/doorbell.js';
import { connectionStringPassword, redactor } from '../postgres/postgres-errors.js';
import { Ringer, ringPayload } from '../postgres/ringer.js';
import { feedArgs, feedPage } from '../sql-functions/feed-page.js';
import {
  readEntries,
  readHighWaterMark,
  readWriteRows,
  SQL_TABLES,
  type SqlTable,
  type SqlTableSchema,
  sqlTable,
  writeCalls,
  writeFunction,
} from '../sql-functions/table-functions.js';
import { classifyRpcError, MIGRATION_HINT, parseRetryAfter } from './supabase-errors.js';

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
  /**
   * The doorbell (LISTEN/NOTIFY), so that caches following the feed read other instances'
   * changes at once rather than at their next poll. PostgREST cannot LISTEN, so `listen` names a
   * direct (or session-mode pooler, port 5432) connection to the same database, used only to
   * listen; not a transaction-mode pooler (Supavisor port 6543), which accepts LISTEN and never
   * delivers (the doorbell detects and reports it). `ring`: after a write that changed something,
   * call `hybrid_cache_ring` (a second RPC, after the write committed, never delaying it) so that
   * listening caches hear it; default: when listening (give every instance `listen`, or `ring:
   * true` to a writer that does not listen). Off by default (no `listen`, no `ring`).
   */
  doorbell?: false | (PostgresDoorbellOptions & { listen?: { connectionString: string }; ring?: boolean });
  /** Where the doorbell says what it does (a pino logger). Default: warnings to stderr. */
  logger?: Logger;
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
export const SUPABASE_TABLES = SQL_TABLES;

export type SupabaseTable = SqlTable;

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
  readonly #table: SqlTableSchema;
  readonly #feedRetentionMs: number | undefined;
  readonly #doorbell: PostgresDoorbell | undefined;
  readonly #ringer: Ringer | undefined;
  /** `Retry-After` of the last response per call, keyed by the call's signal (own clients only). */
  readonly #retryAfter = new WeakMap<AbortSignal, number>();

  constructor(options: SupabaseStorageOptions) {
    this.#schema = options.schema ?? 'public';
    const table = sqlTable(options.table ?? 'hybrid_cache_entries');
    if (!table) {
      throw new StorageConfigurationError(
        `SupabaseStorage table must be one of ${Object.keys(SQL_TABLES).join(', ')}; got ${String(options.table)}`,
      );
    }
    this.#table = table;
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
    if (options.doorbell) {
      const { listen, ring: ringing = listen !== undefined, ...doorbell } = options.doorbell;
      const logger = options.logger ?? pino({ name: 'hybrid-cache', level: 'warn' }, pino.destination(2));
      const topic = `${this.#schema}.${options.table ?? 'hybrid_cache_entries'}`;
      const channel = doorbell.channel ?? DEFAULT_DOORBELL_CHANNEL;
      this.#ringer = !ringing
        ? undefined
        : new Ringer(
            async (origin) => {
              // The function sends the payload as given: a ring names its origin as PostgresStorage's do.
              await this.#rpc('hybrid_cache_ring', {
                p_topic: ringPayload(topic, origin),
                p_channel: channel,
              });
            },
            (error) => {
              // A database migrated before the doorbell: say so once, then stop asking.
              if (!(error instanceof StorageConfigurationError)) return;
              void this.#ringer?.stop();
              logger.warn(
                { err: error },
                `this store cannot ring the doorbell: other caches read its changes at their feed's poll interval. ${MIGRATION_HINT}`,
              );
            },
          );
      if (listen) {
        const { connectionString } = listen;
        this.#doorbell = new PostgresDoorbell({
          ...doorbell,
          // pg loads only here, when listening: PostgREST is this store's only data path.
          client: async () => {
            const { default: pg } = await import('pg');
            return new pg.Client({
              connectionString,
              application_name: 'hybrid-cache doorbell',
              keepAlive: true,
              keepAliveInitialDelayMillis: 10_000,
              connectionTimeoutMillis: 10_000,
              query_timeout: 10_000,
            });
          },
          topic,
          redact: redactor([connectionStringPassword(connectionString)]),
          logger,
        });
      }
    }
  }

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    if (keys.length === 0) return new Map();
    const { functions, keyField, keysParam } = this.#table;
    const fn = functions.getWithItems;
    const data = await this.#rpc(fn, { [keysParam]: [...new Set(keys)] }, opts);
    const found = readEntries(data, keyField);
    if (!found) throw unexpectedShape(fn);
    return found;
  }

  /**
   * One RPC per batch as a rule: the table's write function applies the values (each with its log
   * floor, in the same upsert), then the appended items, in one transaction. A batch where an
   * append of a key precedes a value of that key takes a call for each part (see `writeCalls`).
   */
  async apply(writes: VersionedWrite[], opts?: ApplyOptions): Promise<ApplyResult[]> {
    const { results, calls } = writeCalls(writes, this.#table.keyField);
    // A permanent failure fails the call as a whole, even for one write: the cache splits batches
    // down to single writes and dead-letters the one that still fails.
    const origin = opts?.origin;
    const fn = writeFunction(this.#table, origin);
    for (const call of calls) {
      const data = await this.#rpc(fn, origin ? { p_origin: origin, ...call.args } : call.args, opts);
      if (!readWriteRows(results, call, writes, data)) throw unexpectedShape(fn);
    }
    if (results.some((result) => result.status === 'applied')) this.#ringer?.ring(origin);
    return results;
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    const data = await this.#rpc(this.#table.functions.highWaterMark, {}, opts);
    const mark = readHighWaterMark(data);
    if (mark === undefined) throw unexpectedShape(this.#table.functions.highWaterMark);
    return mark;
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

  /** The table's change feed, read through its SQL function (see sql-functions/feed-page.ts). */
  async changes(after: string | null, opts?: FeedReadOptions): Promise<FeedPage> {
    const fn = this.#table.functions.changes;
    const args = feedArgs(after, opts);
    const page = feedPage(await this.#rpc(fn, args, opts?.signal ? { signal: opts.signal } : undefined));
    if (!page) throw unexpectedShape(fn);
    return page;
  }

  /**
   * Rings `listener` when this table changes, with `doorbell.listen` (see `doorbell`); the first
   * subscriber starts the listening connection, the last unsubscribe closes it. Without, never rings.
   */
  onChange(listener: (ring?: DoorbellRing) => void): () => void {
    return this.#doorbell?.subscribe(listener) ?? (() => {});
  }

  doorbellState(): DoorbellState {
    return this.#doorbell?.state ?? 'off';
  }

  /** The doorbell's connection, rings and heartbeat, for metrics; undefined when it does not listen. */
  doorbellStats(): ReturnType<PostgresDoorbell['stats']> | undefined {
    return this.#doorbell?.stats();
  }

  async close(): Promise<void> {
    await this.#doorbell?.close();
    await this.#ringer?.stop();
  }

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
