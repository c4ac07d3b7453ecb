import { resolve } from 'node:path';
import type Database from 'better-sqlite3';
import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../contract/errors.js';
import { DEFAULT_FEED_RETENTION_MS, feedPageLimit } from '../contract/feed.js';
import {
  appliedLogFloor,
  isAboveFloor,
  logFloorProblem,
  NO_LOG_FLOOR,
  storedHasEnded,
} from '../contract/log-floor.js';
import { staleAnswer } from '../contract/stale-answer.js';
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  expiredTombstoneVersionBound,
  nonNegativeMs,
} from '../contract/tombstone-retention.js';
import {
  type AppendWrite,
  type ApplyOptions,
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
  type VersionedWrite,
} from '../contract/types.js';
import { type FileIdentity, identify, isSameFile } from '../sqlite-file/file-identity.js';
import { isItemError, toStorageError } from '../sqlite-file/sqlite-errors.js';
import { openSqliteFile } from '../sqlite-file/sqlite-file.js';
import { retryWhileBusy } from '../sqlite-file/while-busy.js';
import { migrateSchema } from './sqlite-schema.js';
import { type Connection, padded, prepareConnection, selectByKeys } from './sqlite-statements.js';

export interface SqliteStorageOptions {
  /** Database file (its directory is created if missing), or `':memory:'` for a throwaway store. */
  path: string;
  /**
   * How long `cleanup()` keeps tombstones (by version time) when the call does not say. Default
   * `DEFAULT_TOMBSTONE_RETENTION_MS`.
   */
  tombstoneRetentionMs?: number;
  /**
   * How long `cleanup()` keeps the change feed (`changes`). Default `DEFAULT_FEED_RETENTION_MS`
   * (1 hour): followers poll every few hundred milliseconds, so only one that was paused or cut
   * off falls behind, and an hour lets it catch up instead of dropping its cache; a follower
   * away longer is told `reset`.
   */
  feedRetentionMs?: number;
  /**
   * How long a call waits for another connection's write lock before failing transiently, and
   * how long opening the file retries while another process is opening it too. better-sqlite3
   * waits synchronously (the event loop is blocked meanwhile), so keep it short: the cache
   * retries with backoff anyway. Default 1000 ms.
   */
  busyTimeoutMs?: number;
  /**
   * SQLite `synchronous` setting. `normal` (default) survives a crash of the process, which is what
   * the outbox's default `process` durability promises: the cache deletes a write from its outbox
   * only after this store acknowledged it, and an acknowledged WAL commit is in the OS page cache.
   * With outbox durability `fsync`, use `full` here too, or a power loss right after a flush could
   * drop writes the outbox has already forgotten.
   */
  synchronous?: 'normal' | 'full';
}

const DEFAULT_BUSY_TIMEOUT_MS = 1_000;
/** Keys per `IN (…)` lookup; well under SQLite's bound-parameter limit (999 in old builds). */
const READ_CHUNK = 512;

/**
 * The embedded default store: one SQLite file, last-writer-wins by version in SQL, tombstones with
 * a retention period, absolute expiry. Several processes may open one store file (WAL); the
 * outbox, unlike this store, is single-owner.
 *
 * The interface is asynchronous but the work is synchronous (better-sqlite3), so a call's signal
 * is only checked on entry. Errors: see `sqlite-errors.ts`; a closed store fails transiently so
 * a flush racing with shutdown leaves its writes in the outbox for the next start.
 */
export class SqliteStorage implements Storage {
  readonly #location: string;
  readonly #tombstoneRetentionMs: number;
  readonly #feedRetentionMs: number;
  readonly #busyTimeoutMs: number;
  readonly #synchronous: 'normal' | 'full';
  /** The open file, its feed and statements; replaced when another file is put at the path. */
  #conn: Connection;
  /** The file's identity when it was opened, to notice it being deleted or replaced underneath us. */
  #fileIdentity: FileIdentity | undefined;

  constructor(options: SqliteStorageOptions) {
    const { path } = options;
    const inMemory = path === ':memory:' || path === '';
    this.#location = inMemory ? '(in memory)' : resolve(path);
    this.#tombstoneRetentionMs = nonNegativeMs(
      options.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS,
    );
    this.#feedRetentionMs = nonNegativeMs(
      options.feedRetentionMs ?? DEFAULT_FEED_RETENTION_MS,
      'feedRetentionMs',
    );
    const busyTimeoutMs = nonNegativeMs(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS, 'busyTimeoutMs');

    this.#busyTimeoutMs = busyTimeoutMs;
    this.#synchronous = options.synchronous ?? 'normal';
    this.#conn = this.#connect(inMemory);
    this.#fileIdentity = inMemory ? undefined : identify(this.#location);
  }

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    opts?.signal?.throwIfAborted();
    const found = new Map<string, StoredEntry>();
    if (keys.length === 0) return found;
    try {
      this.#assertUsable();
      const now = Date.now();
      for (let start = 0; start < keys.length; start += READ_CHUNK) {
        const chunk = keys.slice(start, start + READ_CHUNK);
        for (const row of selectByKeys(this.#conn, chunk.length).all(now, ...padded(chunk))) {
          const entry: StoredEntry = { version: row.version, json: row.json, expiresAt: row.expires_at };
          if (row.json !== null) {
            const items = this.#conn.selectItems.all(row.key);
            if (items.length > 0) entry.items = items;
          }
          found.set(row.key, entry);
        }
      }
    } catch (error) {
      throw toStorageError(error, 'read', this.#location);
    }
    return found;
  }

  async apply(writes: VersionedWrite[], opts?: ApplyOptions): Promise<ApplyResult[]> {
    opts?.signal?.throwIfAborted();
    if (writes.length === 0) return [];
    const origin = opts?.origin || null;
    try {
      this.#assertUsable();
      return this.#conn.db
        .transaction(() => writes.map((write) => this.#applyOne(write, origin)))
        .immediate();
    } catch (error) {
      throw toStorageError(error, 'write', this.#location);
    }
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    opts?.signal?.throwIfAborted();
    try {
      this.#assertUsable();
      return this.#conn.selectHighWaterMark.get() as number;
    } catch (error) {
      throw toStorageError(error, 'read', this.#location);
    }
  }

  /**
   * The change feed of this file, whichever connection or process wrote it. The epoch is created
   * with the file, so a file replaced or recreated at the path answers `reset`; a restored backup
   * keeps its epoch but not its newest changes, which `cursorIsServable` (contract/feed.ts) notices.
   */
  async changes(after: string | null, opts?: FeedReadOptions): Promise<FeedPage> {
    opts?.signal?.throwIfAborted();
    const limit = feedPageLimit(opts);
    try {
      this.#assertUsable();
      return this.#conn.feed.read(after, limit, opts?.skipOrigin || null);
    } catch (error) {
      throw toStorageError(error, 'feed read', this.#location);
    }
  }

  /**
   * Deletes expired entries and tombstones older than the retention period (by the time their
   * version was minted), and prunes the change feed past `feedRetentionMs`. Returns how many
   * entries and items were removed; pruned changes are not counted (they are no entries).
   */
  async cleanup(opts?: StorageCleanupOptions): Promise<number> {
    opts?.signal?.throwIfAborted();
    const retentionMs = nonNegativeMs(opts?.tombstoneRetentionMs ?? this.#tombstoneRetentionMs);
    try {
      this.#assertUsable();
      const now = Date.now();
      const tombstoneVersionBound = expiredTombstoneVersionBound(retentionMs, now);
      return this.#conn.db
        .transaction(() => {
          this.#conn.feed.prune(now - this.#feedRetentionMs);
          return (
            this.#conn.deleteOrphanItems.run(now).changes +
            this.#conn.deleteExpired.run(now).changes +
            this.#conn.deleteOldTombstones.run(tombstoneVersionBound).changes
          );
        })
        .immediate();
    } catch (error) {
      throw toStorageError(error, 'cleanup', this.#location);
    }
  }

  async close(): Promise<void> {
    if (this.#conn.db.open) this.#conn.db.close();
  }

  #applyOne(write: VersionedWrite, origin: string | null): ApplyResult {
    try {
      if (typeof write.key !== 'string') throw new TypeError('key must be a string');
      if (isAppend(write)) return this.#appendOne(write, origin);
      const problem = logFloorProblem(write);
      if (problem) throw new TypeError(problem);
      const previous = this.#conn.selectEntry.get(write.key);
      const floor = appliedLogFloor(
        write,
        previous && {
          version: previous.version,
          ended: storedHasEnded({ json: previous.json, expiresAt: previous.expires_at }, write, Date.now()),
        },
      );
      // The floor is raised in the same upsert as the value, and only if the value is written.
      const { changes } = this.#conn.upsert.run(write.key, write.version, write.json, write.expiresAt, floor);
      if (changes > 0) {
        this.#conn.feed.record(origin, write.key, write.version);
        if (floor > (previous?.log_floor ?? NO_LOG_FLOOR))
          this.#conn.deleteItemsAtOrBelow.run(write.key, floor);
        return { status: 'applied' };
      }
      const stored = this.#conn.selectEntry.get(write.key);
      return stored === undefined ? { status: 'stale' } : staleAnswer(write, stored);
    } catch (error) {
      // Anything else (I/O, disk full, lock lost) aborts the whole batch: rethrown, rolled back.
      if (!isItemError(error)) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      return {
        status: 'rejected',
        error: new PermanentStorageError(
          `SQLite store rejected the write to ${String(write.key)}: ${reason}`,
          {
            cause: error,
          },
        ),
      };
    }
  }

  /** Each item once (by id), unless the key's log floor is at or above the item. */
  #appendOne(write: AppendWrite, origin: string | null): ApplyResult {
    const stored = this.#conn.selectEntry.get(write.key);
    const floor = stored?.log_floor ?? NO_LOG_FLOOR;
    let accepted = 0;
    let newest: LogItem | undefined;
    for (const item of write.items) {
      if (!isAboveFloor(item, floor)) continue;
      accepted++;
      if (this.#conn.insertItem.run(write.key, item.version, item.id, item.json).changes === 0) continue;
      if (!newest || compareItems(item, newest) > 0) newest = item;
    }
    // Only an item stored now is news: a re-sent append changes nothing a follower holds.
    if (newest) this.#conn.feed.record(origin, write.key, newest.version, newest.id);
    if (accepted === 0 && stored) return { status: 'stale', storedVersion: stored.version };
    this.#conn.raiseExpiry.run(write.expiresAt, write.expiresAt, write.key, write.version, write.appendedAt);
    return { status: 'applied' };
  }

  /** Opens the file at the path (or a throwaway in-memory store), brings its schema up to date and prepares the statements. */
  #connect(inMemory: boolean, options: Database.Options = {}): Connection {
    const db = this.#open(inMemory, options);
    try {
      db.pragma(`busy_timeout = ${Math.round(this.#busyTimeoutMs)}`);
      // Another process opening the same file at the same moment can refuse these at once.
      retryWhileBusy(() => {
        if (db.pragma('journal_mode', { simple: true }) !== 'wal') db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${this.#synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
        migrateSchema(db, this.#location);
      }, this.#busyTimeoutMs);
      return prepareConnection(db);
    } catch (error) {
      db.close();
      throw openError(error, this.#location);
    }
  }

  #open(inMemory: boolean, options: Database.Options): Database.Database {
    return openSqliteFile(
      inMemory ? ':memory:' : this.#location,
      options,
      (reason, cause, nativeModule) =>
        new StorageConfigurationError(
          `cannot open SQLite store ${this.#location}: ${reason}${nativeModule ? '' : FILE_ADVICE}`,
          { cause },
        ),
    );
  }

  #assertUsable(): void {
    if (!this.#conn.db.open) throw new TransientStorageError(`SQLite store ${this.#location} is closed`);
    if (!this.#fileIdentity) return;
    const now = identify(this.#fileIdentity.path);
    if (isSameFile(this.#fileIdentity, now)) return;
    // An unlinked file keeps accepting writes through the open handle; they would vanish on the
    // next start, after the outbox had already let go of them.
    if (now === undefined) {
      throw new StorageConfigurationError(
        `SQLite store ${this.#location} was deleted while open; restore it, or put a store file at ` +
          'that path, which is then opened',
      );
    }
    this.#reopen(now);
  }

  /**
   * Another file was put at the path (a restored backup, or a store recreated by another process):
   * from now on this store is that file, as it would be for a process started now. Its feed
   * answers with another epoch or a cursor it cannot serve, so followers drop what they cached.
   * The old connection is closed; SQLite neither checkpoints nor deletes the WAL of a moved file.
   */
  #reopen(identity: FileIdentity): void {
    const replaced = this.#conn;
    // Only the file that was seen: if it went away meanwhile, the open fails instead of creating one.
    this.#conn = this.#connect(false, { fileMustExist: true });
    // Taken before the open: if the file was swapped again meanwhile, the next call opens that one.
    this.#fileIdentity = identity;
    replaced.db.close();
  }
}

const FILE_ADVICE = '; check the path, its permissions and that it is a hybrid-cache store file';

function openError(error: unknown, location: string): Error {
  if (error instanceof StorageConfigurationError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new StorageConfigurationError(`cannot open SQLite store ${location}: ${reason}${FILE_ADVICE}`, {
    cause: error,
  });
}
