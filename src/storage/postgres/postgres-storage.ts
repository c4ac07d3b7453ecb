import pg from 'pg';
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
import { DEFAULT_DOORBELL_CHANNEL, PostgresDoorbell, type PostgresDoorbellOptions } from './doorbell.js';
import { type PoolSource, poolFrom } from './pool.js';
import { classifyPgError, connectionBroken, MIGRATE_HINT } from './postgres-errors.js';
import { Ringer, ringPayload } from './ringer.js';

export type PostgresTable = SqlTable;

export interface PostgresStorageCommonOptions {
  /**
   * The table this store reads and writes, through the SQL functions its migrations ship
   * (supabase/migrations). Default `hybrid_cache_entries`, the general-purpose table;
   * `conversation_threads` is the conversation store's table, which the daemon uses.
   */
  table?: PostgresTable;
  /** Schema the migrations were applied to. Default `public`. */
  schema?: string;
  /**
   * How long `cleanup` keeps the change feed; a follower that reads less often is answered
   * `reset`. Default: the SQL cleanup function's own, equal to `DEFAULT_FEED_RETENTION_MS` (1 hour).
   */
  feedRetentionMs?: number;
  /**
   * The doorbell (LISTEN/NOTIFY): after each write that changed something this store NOTIFYs
   * the channel (after the write commits, never inside it: see bench/results/doorbell-notify.md),
   * and a cache following its feed listens there on a dedicated connection, so that other
   * instances' changes are read at once rather than at the next poll. On by default; `false`
   * neither rings nor listens. Listening needs a session: not through a transaction-mode pooler
   * (Supavisor port 6543, PgBouncer `pool_mode=transaction`), which the doorbell detects and reports.
   */
  doorbell?: false | PostgresDoorbellOptions;
  /** Where the doorbell says what it does (a pino logger). Default: warnings to stderr. */
  logger?: Logger;
}

export type PostgresStorageOptions = PostgresStorageCommonOptions & PoolSource;

/** One argument of a function call: its name, value, and the SQL type it is sent as. */
type Argument = [name: string, value: unknown, type: string];

/**
 * bigint (int8) columns as numbers: node-postgres returns them as strings, since not every int8
 * fits a double. Versions are safe integers by contract; one that is not stays a string, which the
 * row checks refuse as an unexpected shape rather than rounding it.
 */
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID && format !== 'binary') {
      return (text: string) => {
        const n = Number(text);
        return Number.isSafeInteger(n) ? n : text;
      };
    }
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * `Storage` over any PostgreSQL (Supabase's included) through node-postgres: every call is one
 * `SELECT * FROM <schema>.<fn>(...)` into the same SQL functions `SupabaseStorage` calls through
 * PostgREST, so one database can serve both adapters at once.
 *
 * node-postgres sends unnamed statements (it prepares a named one only when asked), so it also
 * works through a transaction-mode pooler (Supavisor, PgBouncer). As with `SupabaseStorage`, the
 * caller's signal is the only deadline; an aborted call closes its connection, and whether the
 * statement committed is unknown, which every write function tolerates (they are idempotent).
 */
export class PostgresStorage implements Storage {
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;
  readonly #redact: (text: string) => string;
  readonly #schema: string;
  readonly #table: SqlTableSchema;
  readonly #feedRetentionMs: number | undefined;
  readonly #doorbell: PostgresDoorbell | undefined;
  readonly #channel: string;
  readonly #topic: string;
  readonly #ringer: Ringer | undefined;
  #closed = false;

  constructor(options: PostgresStorageOptions) {
    const table = sqlTable(options.table ?? 'hybrid_cache_entries');
    if (!table) {
      throw new StorageConfigurationError(
        `PostgresStorage table must be one of ${Object.keys(SQL_TABLES).join(', ')}; got ${String(options.table)}`,
      );
    }
    this.#table = table;
    this.#schema = options.schema ?? 'public';
    this.#feedRetentionMs =
      options.feedRetentionMs === undefined
        ? undefined
        : nonNegativeMs(options.feedRetentionMs, 'feedRetentionMs');
    const source = poolFrom(options, 'PostgresStorage');
    this.#pool = source.pool;
    this.#ownsPool = source.owned;
    this.#redact = source.redact;
    this.#topic = `${this.#schema}.${options.table ?? 'hybrid_cache_entries'}`;
    this.#channel = (options.doorbell !== false && options.doorbell?.channel) || DEFAULT_DOORBELL_CHANNEL;
    if (options.doorbell !== false) {
      const { clientConfig } = source;
      this.#doorbell = new PostgresDoorbell({
        ...options.doorbell,
        client: () =>
          new pg.Client({
            ...clientConfig,
            application_name: 'hybrid-cache doorbell',
            // TCP keepalive notices a peer gone without a word sooner than the heartbeat would.
            keepAlive: true,
            keepAliveInitialDelayMillis: 10_000,
            connectionTimeoutMillis: 10_000,
            query_timeout: 10_000,
          }),
        topic: this.#topic,
        redact: this.#redact,
        logger: options.logger ?? pino({ name: 'hybrid-cache', level: 'warn' }, pino.destination(2)),
      });
      // After the write committed, outside its transaction: see the doorbell option.
      this.#ringer = new Ringer(async (origin) => {
        await this.#pool.query('SELECT pg_notify($1, $2)', [this.#channel, ringPayload(this.#topic, origin)]);
      });
    }
  }

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    if (keys.length === 0) return new Map();
    const { functions, keyField, keysParam } = this.#table;
    const fn = functions.getWithItems;
    const rows = await this.#call(fn, [[keysParam, [...new Set(keys)], 'text[]']], opts);
    const found = readEntries(rows, keyField);
    if (!found) throw this.#unexpectedShape(fn);
    return found;
  }

  /**
   * One call per batch as a rule: the table's write function applies the values (each with its log
   * floor, in the same upsert), then the appended items, in one transaction. A batch where an
   * append of a key precedes a value of that key takes a call for each part (see `writeCalls`).
   */
  async apply(writes: VersionedWrite[], opts?: ApplyOptions): Promise<ApplyResult[]> {
    const { results, calls } = writeCalls(writes, this.#table.keyField);
    // A permanent failure fails the call as a whole, even for one write: the cache splits batches
    // down to single writes and dead-letters the one that still fails.
    const origin = opts?.origin;
    const fn = writeFunction(this.#table, origin);
    const args: Argument[] = origin ? [['p_origin', origin, 'text']] : [];
    for (const call of calls) {
      const rows = await this.#call(
        fn,
        [
          ...args,
          // JSON text: node-postgres would send a JavaScript array as a PostgreSQL array.
          ['p_writes', JSON.stringify(call.args.p_writes), 'jsonb'],
          ['p_appends', JSON.stringify(call.args.p_appends), 'jsonb'],
        ],
        opts,
      );
      if (!readWriteRows(results, call, writes, rows)) throw this.#unexpectedShape(fn);
    }
    if (results.some((result) => result.status === 'applied')) this.#ringer?.ring(origin);
    return results;
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    const fn = this.#table.functions.highWaterMark;
    const rows = await this.#call(fn, [], opts);
    const mark = readHighWaterMark(rows[0]?.result);
    if (mark === undefined) throw this.#unexpectedShape(fn);
    return mark;
  }

  /**
   * Runs the table's cleanup function: deletes expired rows and tombstones minted longer than
   * `tombstoneRetentionMs` ago, by their version's time (default `DEFAULT_TOMBSTONE_RETENTION_MS`),
   * and prunes the change feed (see `feedRetentionMs`). Returns how many rows went, feed not counted.
   */
  async cleanup(opts?: StorageCleanupOptions): Promise<number> {
    const fn = this.#table.functions.cleanup;
    const retention = retentionInterval(opts?.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS);
    const args: Argument[] = [['p_tombstone_retention', retention, 'interval']];
    // Sent only when configured, so a database migrated before the feed still takes the call.
    if (this.#feedRetentionMs !== undefined) {
      args.push(['p_feed_retention', retentionInterval(this.#feedRetentionMs), 'interval']);
    }
    const rows = await this.#call(fn, args, opts);
    const removed = rows[0]?.result;
    if (typeof removed !== 'number') throw this.#unexpectedShape(fn);
    return removed;
  }

  /** The table's change feed, read through its SQL function (see sql-functions/feed-page.ts). */
  async changes(after: string | null, opts?: FeedReadOptions): Promise<FeedPage> {
    const fn = this.#table.functions.changes;
    const { p_after, p_limit, p_skip_origin } = feedArgs(after, opts);
    const args: Argument[] = [
      ['p_after', p_after, 'text'],
      ['p_limit', p_limit, 'integer'],
    ];
    if (p_skip_origin !== undefined) args.push(['p_skip_origin', p_skip_origin, 'text']);
    const rows = await this.#call(fn, args, opts?.signal ? { signal: opts.signal } : undefined);
    const page = feedPage(rows[0]?.result);
    if (!page) throw this.#unexpectedShape(fn);
    return page;
  }

  /**
   * Rings `listener` when this table changes (see `doorbell`); the first subscriber starts the
   * listening connection, the last unsubscribe closes it. Without a doorbell, never rings.
   */
  onChange(listener: (ring?: DoorbellRing) => void): () => void {
    if (!this.#doorbell || this.#closed) return () => {};
    return this.#doorbell.subscribe(listener);
  }

  doorbellState(): DoorbellState {
    return this.#doorbell?.state ?? 'off';
  }

  /** The doorbell's connection, rings and heartbeat, for metrics; undefined with `doorbell: false`. */
  doorbellStats(): ReturnType<PostgresDoorbell['stats']> | undefined {
    return this.#doorbell?.stats();
  }

  /** Ends the pool if this adapter created it; a pool passed in stays open for its owner. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#doorbell?.close();
    await this.#ringer?.stop();
    if (this.#ownsPool) await this.#pool.end();
  }

  /** `SELECT * FROM schema.fn(name => $1::type, ...)`; a scalar result is the column `result`. */
  async #call(fn: string, args: Argument[], opts?: StorageCallOptions): Promise<Record<string, unknown>[]> {
    const signal = opts?.signal;
    signal?.throwIfAborted();
    // As the SQLite store: a closed store fails transiently, so a cache closing around it retries.
    if (this.#closed) throw new TransientStorageError(`PostgresStorage is closed (${this.#schema}.${fn})`);
    const params = args.map(([name, , type], i) => `${pg.escapeIdentifier(name)} => $${i + 1}::${type}`);
    const text = `SELECT * FROM ${pg.escapeIdentifier(this.#schema)}.${pg.escapeIdentifier(fn)}(${params.join(', ')}) AS result`;
    const values = args.map(([, value]) => value);
    const what = `PostgreSQL ${this.#schema}.${fn}`;
    let client: pg.PoolClient;
    try {
      client = await untilAborted(this.#pool.connect(), signal, (late) => late.release());
    } catch (error) {
      signal?.throwIfAborted();
      throw classifyPgError(what, error, this.#redact);
    }
    try {
      const result = await untilAborted(client.query({ text, values, types }), signal);
      client.release();
      return result.rows as Record<string, unknown>[];
    } catch (error) {
      // An aborted statement may still be running: that connection must not be handed out again.
      client.release(signal?.aborted ? true : connectionBroken(error));
      signal?.throwIfAborted();
      throw classifyPgError(what, error, this.#redact);
    }
  }

  #unexpectedShape(fn: string): StorageConfigurationError {
    return new StorageConfigurationError(
      `PostgreSQL function ${this.#schema}.${fn} answered in an unexpected shape: the database's functions do not match this version of hybrid-cache. ${MIGRATE_HINT}`,
    );
  }
}

/**
 * `promise`, or the signal's reason as soon as it aborts. A result that arrives after the abort
 * goes to `late` (to give back a connection nobody will use); a late failure is ignored (the
 * promise is always handled, so it is never an unhandled rejection).
 */
function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  late?: (value: T) => void,
): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) late?.(value);
        else resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
