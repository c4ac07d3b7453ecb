import { fdatasync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { openSqliteFile } from '../storage/sqlite-file.js';
import { OutboxError } from './errors.js';
import {
  type Acknowledged,
  isPendingItem,
  type Outbox,
  type PendingItem,
  type PendingWrite,
  type Reversion,
} from './outbox.js';
import { describeOpenFailure, describeReplayFailure, describeWriteFailure, isFull } from './outbox-errors.js';
import { OutboxFiles } from './outbox-files.js';
import { assertOutboxFile, inspectHeldFile, isBusy, migrateOutbox } from './outbox-schema.js';
import type { DeadLetter, Durability } from './types.js';
import { type WalLimits, walBytesUpperBound, walLimits } from './wal-limits.js';

export interface SqliteOutboxOptions {
  path: string;
  durability: Exclude<Durability, 'none'>;
  /** Cap on the outbox file and its write-ahead log together; writes past it reject (as on a full disk). Default: no cap. */
  maxFileBytes?: number;
  /** How often the log is checkpointed and failed acknowledgements retried, in the background. Default 1 s. */
  maintenanceIntervalMs?: number;
  logger?: Logger;
}

type Row = [
  key: string,
  version: number,
  json: string | null,
  expiresAt: number | null,
  queuedAt: number,
  unanchored: number,
  logFloor: number,
];
type Ack = { key: string; version: number };
type ItemRow = [
  key: string,
  id: string,
  version: number,
  json: string,
  expiresAt: number | null,
  queuedAt: number,
  unanchored: number,
];
type LetterRow = [string, number, string | null, number | null, string | null, string, number];

const DEFAULT_MAINTENANCE_INTERVAL_MS = 1_000;
/** The background checkpoint threshold never drops below this, however little disk is free. */
const MIN_CHECKPOINT_AT_BYTES = 64 * 1024;
/** Below this much free disk, each commit first checks that it leaves room to clear the backlog. */
const LOW_DISK_BYTES = 32 * 2 ** 20;
/**
 * Acknowledged rows deleted per transaction, one transaction per turn of the event loop: clearing a
 * flushed batch of 200 at once held the loop for ~0.4 ms, which every write waiting behind it paid.
 */
const ACK_CHUNK = 32;
/** On a nearly full disk, fewer per transaction, so that one transaction fits the room kept for it. */
const LOW_DISK_ACK_CHUNK = 8;
/** Log pages one transaction deleting a low-disk chunk of acknowledged rows may write (leaves, parents, freelist). */
const ACK_ROOM_PAGES = 2 * LOW_DISK_ACK_CHUNK + 8;
/** With durability `fsync`, the log file is checked after every this many transactions (see `#afterWrite`). */
const LOG_CHECK_EVERY_FSYNC_COMMITS = 16;
const DAMAGED_JSON = 'its JSON was damaged in the outbox (not valid JSON); it was not sent to the store';

/**
 * Group commit waits for the next turn of the event loop, not a microtask: in a server, concurrent
 * writers arrive in separate I/O callbacks, and only a macrotask boundary lets all of them join one
 * transaction. Timers are bound at load so fake timers in tests cannot stall the outbox.
 */
const scheduleCommit: (commit: () => void) => void = globalThis.setImmediate.bind(globalThis);
const scheduleSoon = globalThis.setImmediate.bind(globalThis);
const repeat = globalThis.setInterval.bind(globalThis);
const stopRepeating = globalThis.clearInterval.bind(globalThis);

/**
 * The local write-ahead outbox: one row per dirty key (its latest version), plus dead letters.
 * Concurrent `append` calls in one tick share one transaction (group commit), and each caller
 * resolves only after that transaction commits and the files are confirmed to be the ones opened.
 *
 * The log is never checkpointed inside a commit (`wal_autocheckpoint = 0`): a background timer
 * checkpoints it, as does the next turn of the event loop once it grows past its threshold.
 */
export class SqliteOutbox implements Outbox {
  readonly durable = true;
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #files: OutboxFiles | undefined;
  readonly #limits: WalLimits;
  readonly #pageSize: number;
  readonly #logger: Logger | undefined;
  readonly #syncsEveryCommit: boolean;
  readonly #upsert: Database.Statement;
  readonly #insertItem: Database.Statement;
  readonly #dropItemsBefore: Database.Statement;
  readonly #ackItem: Database.Statement;
  readonly #insertLetter: Database.Statement;
  readonly #raiseHighest: Database.Statement;
  readonly #hasPending: Database.Statement;
  readonly #commitGroup: (writes: Array<PendingWrite | PendingItem>) => void;
  readonly #ackAll: (writes: readonly Ack[], items: ReadonlyArray<[string, number]>) => void;
  readonly #anchorAll: (changes: readonly Reversion[], anchoredThrough: number) => boolean;
  readonly #maintenance: NodeJS.Timeout;
  #group: Array<{ write: PendingWrite | PendingItem; resolve: () => void; reject: (error: Error) => void }> =
    [];
  /** Acknowledgements that could not be written yet (disk full): retried in the background. */
  readonly #unacknowledged = new Map<string, number>();
  /** Appended items acknowledged but not yet deleted, by id, with their versions. */
  readonly #unacknowledgedItems = new Map<string, number>();
  #closed = false;
  #commits = 0;
  #checkpoints = 0;
  /** Size of the log file: its disk usage (after a checkpoint the log is reused from its start, so not always its content). */
  #walBytes = 0;
  /** Size of the log file right after the last checkpoint; growing past it means the reused log filled up again. */
  #walBytesAtCheckpoint = 0;
  /** Free bytes on the outbox's filesystem, as last measured. */
  #freeBytes = Number.POSITIVE_INFINITY;
  #checkpointAtBytes: number;
  #checkpointRequested = false;
  /** Set by `close`: settles once every handle of the files is closed. */
  #released: Promise<void> | undefined;
  /** Set by `close` while a log sync on the thread pool still holds a descriptor; called once it is released. */
  #onFilesClosed: (() => void) | undefined;
  #commitsSinceLogCheck = 0;
  #acknowledging = false;
  #wroteSinceMaintenance = false;
  /** Set for good when the files were deleted or replaced underneath the open handle. */
  #lost: OutboxError | undefined;
  /** The last write failure, until a write (or a background probe) succeeds. */
  #writeFailure: OutboxError | undefined;
  #maintenanceFailing = false;

  /** Opens (creating if needed) the outbox; on any failure nothing stays open and an `OutboxError` says why. */
  static open(options: SqliteOutboxOptions): SqliteOutbox {
    const { path } = options;
    const db = openSqliteFile(
      path,
      { timeout: 0 },
      (reason, cause) => new OutboxError(`cannot open the outbox at ${path}: ${reason}`, { cause }),
    );
    try {
      return new SqliteOutbox(db, options);
    } catch (error) {
      db.close();
      const failure = describeOpenFailure(path, error);
      if (isBusy(error)) inspectHeldFile(path);
      throw failure;
    }
  }

  private constructor(db: Database.Database, options: SqliteOutboxOptions) {
    this.#db = db;
    this.#path = options.path;
    this.#logger = options.logger;
    this.#syncsEveryCommit = options.durability === 'fsync';
    // Exclusive locking: the first read takes the file's lock and keeps it until close, so a second
    // process (or a second cache in this one) fails fast instead of both replaying and flushing the
    // same rows. It also keeps the WAL index in heap memory. Nothing is written before the file is
    // known to be an outbox (or empty).
    db.pragma('locking_mode = EXCLUSIVE');
    assertOutboxFile(db, this.#path);
    this.#pageSize = db.pragma('page_size', { simple: true }) as number;
    this.#limits = walLimits(options.maxFileBytes, this.#pageSize, options.durability);
    this.#checkpointAtBytes = this.#limits.checkpointAtBytes;
    this.#configure(options.durability);
    db.transaction(() => migrateOutbox(db))();

    this.#upsert = db.prepare(
      `INSERT INTO pending (key, version, json, expires_at, queued_at, unanchored) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET version = excluded.version, json = excluded.json,
         expires_at = excluded.expires_at, unanchored = excluded.unanchored,
         ends_log_at = CASE WHEN excluded.json IS NULL THEN 0
                            WHEN pending.json IS NULL OR pending.expires_at <= excluded.queued_at
                              THEN excluded.version - 1
                            ELSE pending.ends_log_at END
       WHERE excluded.version > pending.version`,
    );
    const ack = db.prepare('DELETE FROM pending WHERE key = ? AND version = ?');
    this.#insertItem = db.prepare(
      `INSERT INTO pending_items (id, key, version, json, expires_at, queued_at, unanchored) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO NOTHING`,
    );
    this.#dropItemsBefore = db.prepare('DELETE FROM pending_items WHERE key = ? AND version < ?');
    this.#ackItem = db.prepare('DELETE FROM pending_items WHERE id = ?');
    // The high-water mark is raised when a row leaves `pending` (until then the row itself holds it),
    // so a commit writes one page fewer.
    this.#raiseHighest = db.prepare(`UPDATE meta SET value = max(value, ?) WHERE name = 'highest_version'`);
    this.#ackAll = db.transaction((writes: readonly Ack[], items: ReadonlyArray<[string, number]>) => {
      let highest = 0;
      for (const w of writes) {
        ack.run(w.key, w.version);
        if (w.version > highest) highest = w.version;
      }
      for (const [id, version] of items) {
        this.#ackItem.run(id);
        if (version > highest) highest = version;
      }
      this.#raiseHighest.run(highest);
    });
    this.#insertLetter = db.prepare(
      `INSERT INTO dead_letters (key, version, json, expires_at, item_id, error, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#hasPending = db
      .prepare('SELECT 1 FROM pending UNION ALL SELECT 1 FROM pending_items LIMIT 1')
      .pluck();
    this.#commitGroup = db.transaction((writes: Array<PendingWrite | PendingItem>) => {
      for (const w of writes) this.#writeOne(w);
    });
    this.#anchorAll = anchorStatement(db);
    // Last: its descriptors may only be closed after the connection (see OutboxFiles).
    this.#files = options.path === ':memory:' ? undefined : OutboxFiles.watch(options.path);
    if (this.#files) this.#adaptToFreeSpace();
    this.#maintenance = repeat(
      () => this.#maintain(),
      options.maintenanceIntervalMs ?? DEFAULT_MAINTENANCE_INTERVAL_MS,
    );
    this.#maintenance.unref();
  }

  /** Transactions committed by `append` so far (group commit folds many appends into one). */
  get commits(): number {
    return this.#commits;
  }

  /** Checkpoints of the write-ahead log run so far (all outside `append`'s commits). */
  get checkpoints(): number {
    return this.#checkpoints;
  }

  get #unacknowledgedCount(): number {
    return this.#unacknowledged.size + this.#unacknowledgedItems.size;
  }

  get failure(): OutboxError | undefined {
    return this.#lost ?? this.#writeFailure;
  }

  get lost(): boolean {
    return this.#lost !== undefined;
  }

  pending(): PendingWrite[] {
    const rows = this.#replayRows<Row>(
      `SELECT key, version, json, expires_at, queued_at, ${STILL_UNANCHORED}, ends_log_at FROM pending ORDER BY queued_at`,
    );
    return rows.map(([key, version, json, expiresAt, queuedAt, unanchored, logFloor]) => ({
      key,
      version,
      json,
      expiresAt,
      queuedAt,
      ...(unanchored ? { unanchored: true } : {}),
      ...(logFloor ? { logFloor } : {}),
    }));
  }

  pendingItems(): PendingItem[] {
    const rows = this.#replayRows<ItemRow>(
      `SELECT key, id, version, json, expires_at, queued_at, ${STILL_UNANCHORED} FROM pending_items ORDER BY version, id`,
    );
    return rows.map(([key, id, version, json, expiresAt, queuedAt, unanchored]) => ({
      key,
      item: { id, version, json },
      expiresAt,
      queuedAt,
      ...(unanchored ? { unanchored: true } : {}),
    }));
  }

  quarantineDamaged(): DeadLetter[] {
    try {
      return this.#db.transaction(() => {
        const rows = this.#db
          .prepare(
            `SELECT key, version, json, expires_at, NULL FROM pending WHERE json IS NOT NULL AND NOT json_valid(json)
             UNION ALL
             SELECT key, version, json, expires_at, id FROM pending_items WHERE NOT json_valid(json)`,
          )
          .raw()
          .all() as Array<[string, number, string, number | null, string | null]>;
        const failedAt = Date.now();
        const letters: DeadLetter[] = rows.map(([key, version, json, expiresAt, itemId]) => ({
          key,
          version,
          json,
          expiresAt,
          ...(itemId === null ? {} : { itemId }),
          error: DAMAGED_JSON,
          failedAt,
        }));
        for (const letter of letters) this.#recordDeadLetter(letter);
        return letters;
      })();
    } catch (error) {
      throw describeReplayFailure(this.#path, error);
    }
  }

  highestVersion(): number {
    this.#flushAcknowledgements();
    try {
      return this.#db
        .prepare(
          `SELECT max((SELECT value FROM meta WHERE name = 'highest_version'),
                      coalesce((SELECT value FROM meta WHERE name = 'anchored_through'), 0),
                      coalesce((SELECT max(version) FROM pending), 0),
                      coalesce((SELECT max(version) FROM pending_items), 0))`,
        )
        .pluck()
        .get() as number;
    } catch (error) {
      throw describeReplayFailure(this.#path, error);
    }
  }

  append(write: PendingWrite | PendingItem): Promise<void> {
    if (this.#closed) return Promise.reject(new OutboxError('the outbox is closed'));
    if (this.#lost) return Promise.reject(this.#lost);
    return new Promise((resolve, reject) => {
      if (this.#group.length === 0) scheduleCommit(() => this.#commitPending());
      this.#group.push({ write, resolve, reject });
    });
  }

  /** Rows still pending, acknowledged ones deleted first; a damaged page read here is named as such. */
  #replayRows<T>(sql: string): T[] {
    this.#flushAcknowledgements();
    try {
      return this.#db.prepare(sql).raw().all() as T[];
    } catch (error) {
      throw describeReplayFailure(this.#path, error);
    }
  }

  /** Throws when the new versions cannot be recorded (a full disk); the caller keeps the writes queued. */
  anchor(changes: readonly Reversion[], anchoredThrough: number): void {
    // A lost file will never be replayed, so its rows need no new versions; memory keeps flushing.
    if (this.#lost) return;
    if (this.#closed) throw new OutboxError(`the outbox at ${this.#path} is closed`);
    let wrote: boolean;
    try {
      wrote = this.#anchorAll(changes, anchoredThrough);
    } catch (error) {
      if (isFull(error)) this.#requestCheckpoint();
      throw describeWriteFailure(this.#path, error, this.#limits.maxPageCount !== undefined);
    }
    if (!wrote) return;
    const lost = this.#afterWrite();
    if (lost) throw lost;
  }

  reservedVersions(): Array<[number, number]> {
    try {
      if (!this.#hasPending.get()) {
        this.#dropReservations();
        return [];
      }
      return this.#db
        .prepare('SELECT old_version, new_version FROM reserved_versions ORDER BY old_version')
        .raw()
        .all() as Array<[number, number]>;
    } catch (error) {
      throw describeReplayFailure(this.#path, error);
    }
  }

  /**
   * Reservations outlive the rows that needed them only as clutter, so failing to delete them (a
   * full disk at start) must not stop a replay, which only reads. The next start tries again.
   */
  #dropReservations(): void {
    try {
      this.#db.exec('DELETE FROM reserved_versions');
    } catch (error) {
      this.#logger?.debug(
        { err: error, path: this.#path },
        'could not clear reserved versions; retried on the next start',
      );
    }
  }

  /**
   * Never throws: the rows are deleted over the next turns of the event loop, a few per turn, and
   * acknowledgements that cannot be written (disk full) are kept and retried in the background.
   * Until then the rows stay, and a restart would re-send them (answered stale).
   */
  acknowledge(writes: readonly Acknowledged[]): void {
    if (this.#closed || this.#lost) return;
    for (const w of writes) {
      if (w.items) {
        for (const item of w.items) this.#unacknowledgedItems.set(item.id, item.version);
      } else if ((this.#unacknowledged.get(w.key) ?? 0) < w.version) {
        this.#unacknowledged.set(w.key, w.version);
      }
    }
    this.#acknowledgeSoon();
  }

  deadLetter(letter: DeadLetter): void {
    if (this.#lost) throw this.#lost;
    this.#db.transaction(() => this.#recordDeadLetter(letter))();
    const lost = this.#afterWrite();
    if (lost) throw lost;
  }

  deadLetters(): DeadLetter[] {
    const rows = this.#db
      .prepare(
        'SELECT key, version, json, expires_at, item_id, error, failed_at FROM dead_letters ORDER BY id',
      )
      .raw()
      .all() as LetterRow[];
    return rows.map(([key, version, json, expiresAt, itemId, error, failedAt]) => ({
      key,
      version,
      json,
      expiresAt,
      ...(itemId === null ? {} : { itemId }),
      error,
      failedAt,
    }));
  }

  requeueDeadLetters(keys?: readonly string[]): DeadLetter[] {
    if (this.#lost) throw this.#lost;
    const letters = this.#db.transaction(() => {
      // A letter whose JSON is damaged stays parked: re-queued, it would be sent to the store as is.
      const taken = this.deadLetters().filter((l) => (!keys || keys.includes(l.key)) && isIntact(l.json));
      const remove = this.#db.prepare(
        'DELETE FROM dead_letters WHERE key = ? AND version = ? AND item_id IS ?',
      );
      const now = Date.now();
      for (const l of taken) {
        remove.run(l.key, l.version, l.itemId ?? null);
        if (l.itemId === undefined) this.#upsert.run(l.key, l.version, l.json, l.expiresAt, now, 0);
        else this.#insertItem.run(l.itemId, l.key, l.version, l.json, l.expiresAt, now, 0);
      }
      return taken;
    })();
    const lost = this.#afterWrite();
    if (lost) throw lost;
    return letters;
  }

  close(): Promise<void> {
    if (this.#released) return this.#released;
    this.#commitPending();
    this.#flushAcknowledgements();
    this.#closed = true;
    stopRepeating(this.#maintenance);
    this.#db.close();
    if (this.#checkpointRequested) {
      // A sync still running on the thread pool closes the handles when it completes.
      this.#released = new Promise((resolve) => (this.#onFilesClosed = resolve));
    } else {
      this.#closeFiles();
      this.#released = Promise.resolve();
    }
    return this.#released;
  }

  #closeFiles(): void {
    this.#files?.close();
    this.#onFilesClosed?.();
  }

  #recordDeadLetter(letter: DeadLetter): void {
    if (letter.itemId === undefined) {
      this.#db.prepare('DELETE FROM pending WHERE key = ? AND version = ?').run(letter.key, letter.version);
    } else {
      this.#ackItem.run(letter.itemId);
    }
    this.#raiseHighest.run(letter.version);
    this.#insertLetter.run(
      letter.key,
      letter.version,
      letter.json,
      letter.expiresAt,
      letter.itemId ?? null,
      letter.error,
      letter.failedAt,
    );
  }

  #writeOne(w: PendingWrite | PendingItem): void {
    if (isPendingItem(w)) {
      this.#insertItem.run(
        w.item.id,
        w.key,
        w.item.version,
        w.item.json,
        w.expiresAt,
        w.queuedAt,
        w.unanchored ? 1 : 0,
      );
      return;
    }
    this.#upsert.run(w.key, w.version, w.json, w.expiresAt, w.queuedAt, w.unanchored ? 1 : 0);
    // A delete takes the key's older items with it, here as in the store.
    if (w.json === null) this.#dropItemsBefore.run(w.key, w.version);
  }

  #commitPending(): void {
    const group = this.#group;
    if (group.length === 0) return;
    this.#group = [];
    const failure = this.#lost ?? this.#commit(group.map((g) => g.write));
    if (failure) {
      for (const g of group) g.reject(failure);
      return;
    }
    for (const g of group) g.resolve();
  }

  /** Commits a group; returns why it must not be acknowledged, if it must not. */
  #commit(writes: Array<PendingWrite | PendingItem>): OutboxError | undefined {
    const rowBytes = () => writes.map(rowByteLength);
    try {
      if (this.#freeBytes <= LOW_DISK_BYTES) this.#assertDiskRoom(rowBytes());
      this.#makeRoomInLog(rowBytes);
      // One statement is its own transaction: a lone write skips BEGIN and COMMIT statements.
      const only = writes.length === 1 ? (writes[0] as PendingWrite | PendingItem) : undefined;
      if (only && (isPendingItem(only) || only.json !== null)) this.#writeOne(only);
      else this.#commitGroup(writes);
      this.#commits++;
    } catch (error) {
      // On a full disk the log may hold frames a checkpoint can fold back, letting later writes reuse it.
      if (isFull(error) || error instanceof OutboxError) this.#requestCheckpoint();
      this.#writeFailure = describeWriteFailure(this.#path, error, this.#limits.maxPageCount !== undefined);
      return this.#writeFailure;
    }
    // The commit went into the files opened; if those are no longer the ones at the path, it is lost.
    const lost = this.#afterWrite();
    if (lost) return lost;
    this.#writeFailure = undefined;
    return undefined;
  }

  /** Deletes acknowledged rows one chunk per turn of the event loop, until none is left or one fails. */
  #acknowledgeSoon(): void {
    if (this.#acknowledging) return;
    this.#acknowledging = true;
    scheduleSoon(() => {
      this.#acknowledging = false;
      const chunk = this.#freeBytes <= LOW_DISK_BYTES ? LOW_DISK_ACK_CHUNK : ACK_CHUNK;
      // A checkpoint under way (the log grew past its threshold) resumes the acknowledgements when done.
      if (this.#flushAcknowledgements(chunk) && this.#unacknowledgedCount > 0 && !this.#checkpointRequested) {
        this.#acknowledgeSoon();
      }
    });
  }

  /** Deletes up to `limit` acknowledged rows in one transaction; false when it could not (kept for a retry). */
  #flushAcknowledgements(limit = Number.POSITIVE_INFINITY): boolean {
    if (this.#unacknowledgedCount === 0 || this.#lost || this.#closed) {
      return true;
    }
    const acks: Ack[] = [];
    for (const [key, version] of this.#unacknowledged) {
      if (acks.length >= limit) break;
      acks.push({ key, version });
    }
    const items: Array<[string, number]> = [];
    for (const entry of this.#unacknowledgedItems) {
      if (acks.length + items.length >= limit) break;
      items.push(entry);
    }
    try {
      this.#makeRoomInLog(() => [
        ...acks.map((a) => Buffer.byteLength(a.key)),
        ...items.map(([id]) => id.length),
      ]);
      this.#ackAll(acks, items);
    } catch (error) {
      // Retried by the next background tick (with a checkpoint first), not at once: on a full disk
      // an immediate retry would fail again, and again.
      this.#reportMaintenance(error);
      return false;
    }
    // A newer version acknowledged meanwhile stays queued: only the entries written are done.
    for (const a of acks)
      if (this.#unacknowledged.get(a.key) === a.version) this.#unacknowledged.delete(a.key);
    for (const [id] of items) this.#unacknowledgedItems.delete(id);
    if (this.#unacknowledgedCount === 0) this.#maintenanceSucceeded();
    this.#afterWrite();
    return true;
  }

  /**
   * Under a file cap, checkpoints (and empties) the log before a transaction that might not fit in
   * what is left of its share. `rowBytes` is only computed when capped.
   */
  #makeRoomInLog(rowBytes: () => number[]): void {
    const { walBudgetBytes, maxPageCount } = this.#limits;
    if (walBudgetBytes === undefined || maxPageCount === undefined || this.#walBytes === 0) return;
    const needed = walBytesUpperBound(rowBytes(), this.#pageSize, maxPageCount);
    if (this.#walBytes + needed > walBudgetBytes) this.#checkpoint('TRUNCATE');
  }

  /**
   * On a nearly full disk, refuses a write that would leave too little room to clear the backlog
   * later: a checkpoint may grow the main file by up to the log's size, and deleting acknowledged
   * rows needs log room. Without this reserve the last write fills the disk, nothing can be deleted
   * or checkpointed, and the outbox stays full after the store has caught up.
   */
  #assertDiskRoom(rowBytes: number[]): void {
    if (!this.#files || this.#freeBytes > LOW_DISK_BYTES) return;
    const needed = walBytesUpperBound(rowBytes, this.#pageSize, Number.POSITIVE_INFINITY);
    if (this.#hasDiskRoomFor(needed)) return;
    // Folding the log back into the main file and emptying it may free enough (a degraded-mode cost).
    if (this.#walBytes > 0 && this.#tryCheckpoint('TRUNCATE') && this.#hasDiskRoomFor(needed)) return;
    throw new OutboxError(
      `the outbox at ${this.#path} could not record the write: the disk is nearly full (${this.#freeBytes} bytes free); ` +
        'the rest is kept for clearing the backlog. It recovers once space is freed or the store acknowledges the backlog',
    );
  }

  #hasDiskRoomFor(logBytes: number): boolean {
    this.#adaptToFreeSpace();
    // Pages the log holds beyond the end of the main file: what the next checkpoint grows it by.
    const pages = this.#db.pragma('page_count', { simple: true }) as number;
    const sizes = this.#files?.check();
    // The log's size too: one left by an earlier process (a crash) is otherwise unknown until the
    // first background tick, and a write before it would be refused without trying a checkpoint.
    if (sizes) this.#walBytes = sizes.walBytes;
    const growth = Math.max(0, pages * this.#pageSize - (sizes?.mainBytes ?? 0));
    // Room to delete acknowledged rows matters only while there are rows to delete.
    const ackRoom =
      this.#unacknowledgedCount > 0 || this.#hasPending.get() ? ACK_ROOM_PAGES * (this.#pageSize + 24) : 0;
    return this.#freeBytes >= growth + logBytes + ackRoom;
  }

  /** Checks the files after a write transaction; returns (and keeps) the error when they were replaced. */
  #afterWrite(): OutboxError | undefined {
    this.#wroteSinceMaintenance = true;
    if (!this.#files) return undefined;
    try {
      // With durability `fsync`, looking at the log right after its sync made the next commit's
      // sync ~50-90 µs slower on ext4 (measured): the log is then looked at every few commits.
      if (this.#syncsEveryCommit && ++this.#commitsSinceLogCheck < LOG_CHECK_EVERY_FSYNC_COMMITS) {
        this.#files.checkMain();
        return undefined;
      }
      this.#commitsSinceLogCheck = 0;
      this.#walBytes = this.#files.check().walBytes;
    } catch (error) {
      this.#lose(error as OutboxError);
      return this.#lost;
    }
    if (this.#walBytes >= this.#checkpointAtBytes && this.#walBytes > this.#walBytesAtCheckpoint) {
      this.#requestCheckpoint();
    }
    return undefined;
  }

  #lose(error: OutboxError): void {
    if (this.#lost) return;
    this.#lost = error;
    this.#unacknowledged.clear();
    this.#unacknowledgedItems.clear();
    this.#logger?.error(
      { err: error, path: this.#path },
      'the outbox file was deleted or replaced; refusing writes',
    );
  }

  /**
   * Runs a checkpoint outside the commit that asked for it. The log is first fsynced on the thread
   * pool, so the sync the checkpoint itself does on the event loop finds (almost) nothing to write.
   * PASSIVE: the log file is kept and reused from its start (SQLite trims it to `journal_size_limit`);
   * growing a file on every commit would cost a metadata sync per commit with durability `fsync`.
   */
  #requestCheckpoint(): void {
    if (this.#checkpointRequested) return;
    this.#checkpointRequested = true;
    const run = () => {
      this.#checkpointRequested = false;
      if (this.#closed) return this.#closeFiles();
      if (this.#lost) return;
      if (this.#tryCheckpoint('PASSIVE')) {
        this.#acknowledgeSoon();
      }
    };
    // With durability `fsync` every commit already synced the log.
    if (this.#files === undefined || this.#syncsEveryCommit) scheduleSoon(run);
    else fdatasync(this.#files.walFd, run);
  }

  /**
   * The background tick: notices deleted or replaced files even with no writes, adapts the
   * checkpoint threshold to the free disk space, retries acknowledgements, checkpoints the log
   * (emptying it when nothing is pending), and probes whether a failing outbox accepts writes again.
   */
  #maintain(): void {
    if (this.#closed || this.#lost || !this.#files) return;
    try {
      this.#walBytes = this.#files.checkPaths().walBytes;
    } catch (error) {
      this.#lose(error as OutboxError);
      return;
    }
    this.#adaptToFreeSpace();
    const wrote = this.#wroteSinceMaintenance;
    this.#wroteSinceMaintenance = false;
    if (wrote || this.#unacknowledgedCount > 0) this.#requestCheckpoint();
    else if (this.#walBytes > 0 && this.#group.length === 0 && !this.#hasPending.get()) {
      // Idle with nothing pending: give the log's disk space back.
      this.#tryCheckpoint('TRUNCATE');
    }
    if (this.#writeFailure) this.#probeWritable();
  }

  /** On a small or filling disk, checkpoint before the log can take the room the main file needs. */
  #adaptToFreeSpace(): void {
    let free: number;
    try {
      const fs = statfsSync(dirname(this.#path));
      free = fs.bavail * fs.bsize;
    } catch {
      return;
    }
    this.#freeBytes = free;
    this.#checkpointAtBytes = Math.min(
      this.#limits.checkpointAtBytes,
      Math.max(MIN_CHECKPOINT_AT_BYTES, Math.floor(free / 4)),
    );
  }

  #tryCheckpoint(mode: 'PASSIVE' | 'TRUNCATE'): boolean {
    try {
      this.#checkpoint(mode);
    } catch (error) {
      this.#reportMaintenance(error);
      return false;
    }
    if (this.#unacknowledgedCount === 0) this.#maintenanceSucceeded();
    return true;
  }

  #checkpoint(mode: 'PASSIVE' | 'TRUNCATE'): void {
    this.#db.pragma(`wal_checkpoint(${mode})`);
    this.#checkpoints++;
    if (!this.#files) return;
    this.#walBytes = this.#files.check().walBytes;
    this.#walBytesAtCheckpoint = this.#walBytes;
    this.#adaptToFreeSpace();
  }

  /** A write that touches one page: succeeds once the outbox has room again. */
  #probeWritable(): void {
    try {
      if (this.#freeBytes <= LOW_DISK_BYTES) this.#assertDiskRoom([this.#pageSize]);
      if (this.#limits.maxPageCount !== undefined && !this.#hasFreePage(this.#limits.maxPageCount)) return;
      this.#db.transaction(() => this.#raiseHighest.run(0))();
    } catch {
      return;
    }
    if (this.#afterWrite()) return;
    this.#logger?.info({ path: this.#path }, 'the outbox accepts writes again');
    this.#writeFailure = undefined;
  }

  /** Under a cap, whether the main file can take another page (a free one inside, or room to grow). */
  #hasFreePage(maxPageCount: number): boolean {
    const pages = this.#db.pragma('page_count', { simple: true }) as number;
    return pages < maxPageCount || (this.#db.pragma('freelist_count', { simple: true }) as number) > 0;
  }

  #reportMaintenance(error: unknown): void {
    if (this.#maintenanceFailing) return;
    this.#maintenanceFailing = true;
    this.#logger?.warn(
      { err: error, path: this.#path, unacknowledged: this.#unacknowledgedCount },
      'outbox maintenance failed (checkpoint or clearing acknowledged writes); retrying in the background',
    );
  }

  #maintenanceSucceeded(): void {
    if (!this.#maintenanceFailing) return;
    this.#maintenanceFailing = false;
    this.#logger?.info({ path: this.#path }, 'outbox maintenance succeeds again');
  }

  #configure(durability: Exclude<Durability, 'none'>): void {
    const db = this.#db;
    db.pragma('journal_mode = WAL');
    // WAL appends each commit to the log with write(2) before the transaction returns, so a commit
    // survives the death of the process at any `synchronous` level. NORMAL syncs only at checkpoints
    // (power loss may drop the newest commits but never corrupts the file); FULL also fsyncs the log
    // on every commit, which is what surviving power loss requires.
    db.pragma(`synchronous = ${durability === 'fsync' ? 'FULL' : 'NORMAL'}`);
    // Checkpoints (two fsyncs each) run in the background, never inside a commit.
    db.pragma('wal_autocheckpoint = 0');
    db.pragma(`journal_size_limit = ${this.#limits.checkpointAtBytes}`);
    if (this.#limits.maxPageCount !== undefined) db.pragma(`max_page_count = ${this.#limits.maxPageCount}`);
    db.exec('BEGIN EXCLUSIVE; COMMIT;');
  }
}

function rowByteLength(w: PendingWrite | PendingItem): number {
  if (isPendingItem(w)) return Buffer.byteLength(w.key) + w.item.id.length + Buffer.byteLength(w.item.json);
  return Buffer.byteLength(w.key) + (w.json === null ? 0 : Buffer.byteLength(w.json));
}

function isIntact(json: string | null): boolean {
  if (json === null) return true;
  try {
    JSON.parse(json);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a row is still unanchored: its flag, unless a later anchor that kept every version
 * recorded (in one meta row) that rows up to its version are anchored.
 */
const STILL_UNANCHORED = `(unanchored = 1 AND version > coalesce((SELECT value FROM meta WHERE name = 'anchored_through'), 0))`;

/**
 * The anchoring step's write. When no version changes (the common restart), one meta row records
 * that every row up to `anchoredThrough` is anchored: a page or two, which a full disk still has
 * room for (the outbox keeps room to clear its backlog), so a full outbox of writes accepted while
 * the store was down still drains. When versions change, the rows are rewritten and their flags
 * cleared in one transaction. Either way reservations an outbox of 0.1 kept are dropped.
 */
function anchorStatement(
  db: Database.Database,
): (changes: readonly Reversion[], anchoredThrough: number) => boolean {
  const value = db.prepare(
    'UPDATE pending SET version = ?, ends_log_at = coalesce(?, ends_log_at) WHERE key = ? AND version = ?',
  );
  const item = db.prepare('UPDATE pending_items SET version = ? WHERE id = ?');
  const clearValues = db.prepare('UPDATE pending SET unanchored = 0 WHERE unanchored = 1');
  const clearItems = db.prepare('UPDATE pending_items SET unanchored = 0 WHERE unanchored = 1');
  const recordAnchored = db.prepare(
    `INSERT INTO meta (name, value) VALUES ('anchored_through', ?)
     ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)`,
  );
  const dropReservations = db.prepare('DELETE FROM reserved_versions');
  const hasReservations = db.prepare('SELECT 1 FROM reserved_versions LIMIT 1').pluck();
  // A read first: an anchor with nothing unanchored (or every row already above the mark) writes no row.
  const hasUnanchored = db
    .prepare(
      `SELECT 1 FROM pending WHERE ${STILL_UNANCHORED} UNION ALL SELECT 1 FROM pending_items WHERE ${STILL_UNANCHORED} LIMIT 1`,
    )
    .pluck();
  const write = db.transaction((changes: readonly Reversion[], anchoredThrough: number) => {
    for (const c of changes) {
      if (c.itemId === undefined) value.run(c.to, c.logFloor ?? null, c.key, c.from);
      else item.run(c.to, c.itemId);
    }
    if (changes.length > 0) {
      clearValues.run();
      clearItems.run();
    } else recordAnchored.run(anchoredThrough);
    if (hasReservations.get()) dropReservations.run();
  });
  return (changes, anchoredThrough) => {
    if (changes.length === 0 && !hasUnanchored.get() && !hasReservations.get()) return false;
    write(changes, anchoredThrough);
    return true;
  };
}
