import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { openSqliteFile } from '../../storage/sqlite-file/sqlite-file.js';
import { OutboxError } from '../errors.js';
import type { DeadLetter, Durability } from '../types.js';
import { AcknowledgementQueue } from './acknowledgements.js';
import { prepareAnchor, readUnanchoredRows, reservationsLeft } from './anchor-rows.js';
import { type OutboxEnvironment, systemEnvironment, type WatchedFiles } from './environment.js';
import { configureCommits, GroupCommit } from './group-commit.js';
import { LogSpace } from './log-space.js';
import { LostFiles } from './lost-files.js';
import { Maintenance, MaintenanceReport } from './maintenance.js';
import type { Acknowledged, Outbox, OutboxRows, PendingItem, PendingWrite, VersionChange } from './outbox.js';
import { describeOpenFailure, describeReplayFailure, describeWriteFailure, isFull } from './outbox-errors.js';
import { assertOutboxFile, inspectHeldFile, isBusy, migrateOutbox } from './outbox-schema.js';
import { OutboxTables } from './outbox-tables.js';
import { prepareRestore } from './restore-rows.js';
import { rowByteLength, UnanchoredTally } from './unanchored-tally.js';
import { walLimits } from './wal-limits.js';

export interface SqliteOutboxOptions {
  path: string;
  durability: Exclude<Durability, 'none'>;
  /** Cap on the outbox file and its write-ahead log together; writes past it reject (as on a full disk). Default: no cap. */
  maxFileBytes?: number;
  /** How often the log is checkpointed and failed acknowledgements retried, in the background. Default 1 s. */
  maintenanceIntervalMs?: number;
  logger?: Logger;
  /** Free space, file sizes, time and the maintenance timer (tests inject their own). Default: the real machine. */
  environment?: OutboxEnvironment;
  /** Called once, when the files are found deleted or replaced (`HealingOutbox` then writes a new one). */
  onLost?: () => void;
}

const DEFAULT_MAINTENANCE_INTERVAL_MS = 1_000;

/**
 * The local write-ahead outbox: one row per dirty key (its latest version), one per appended item,
 * plus dead letters. Concurrent `append` calls in one turn share one transaction (group commit), and
 * each caller resolves only after it commits and the files are confirmed to be the ones opened.
 * This class composes the parts; each part holds one job.
 */
export class SqliteOutbox implements Outbox {
  readonly durable = true;
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #logger: Logger | undefined;
  readonly #environment: OutboxEnvironment;
  readonly #pageSize: number;
  readonly #files: WatchedFiles | undefined;
  readonly #tables: OutboxTables;
  readonly #anchor: (changes: readonly VersionChange[], anchoredThrough: number) => boolean;
  /** The rows the anchoring step will rewrite: a nearly full disk keeps room for that rewrite. */
  readonly #unanchored: UnanchoredTally;
  readonly #restore: (rows: OutboxRows, letters: readonly DeadLetter[]) => void;
  readonly #groupCommit: GroupCommit;
  readonly #acknowledgements: AcknowledgementQueue;
  readonly #space: LogSpace;
  readonly #lostFiles: LostFiles;
  readonly #report: MaintenanceReport;
  readonly #maintenance: Maintenance;
  /** Whether rows wait to be deleted (room to delete them must stay free); made once, asked per commit. */
  readonly #hasBacklog = () => this.#acknowledgements.size > 0 || this.#tables.hasPending();
  #closed = false;
  #commits = 0;
  /** The last write failure, until a write (or a background probe) succeeds. */
  #writeFailure: OutboxError | undefined;
  /** Set by `close`: settles once every handle of the files is closed. */
  #released: Promise<void> | undefined;
  /** Set by `close` while a log sync on the thread pool still holds a descriptor; called once it is released. */
  #onFilesClosed: (() => void) | undefined;

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
    this.#environment = options.environment ?? systemEnvironment;
    const syncsEveryCommit = options.durability === 'fsync';
    // Exclusive locking: the first read takes the file's lock and keeps it until close, so a second
    // process (or a second cache in this one) fails fast instead of both replaying and flushing the
    // same rows. It also keeps the WAL index in heap memory. Nothing is written before the file is
    // known to be an outbox (or empty).
    db.pragma('locking_mode = EXCLUSIVE');
    assertOutboxFile(db, this.#path);
    this.#pageSize = db.pragma('page_size', { simple: true }) as number;
    const limits = walLimits(options.maxFileBytes, this.#pageSize, options.durability);
    configureCommits(db, options.durability, limits);
    db.transaction(() => migrateOutbox(db))();
    this.#tables = new OutboxTables(db);
    this.#anchor = prepareAnchor(db);
    this.#unanchored = new UnanchoredTally(() => readUnanchoredRows(db));
    this.#restore = prepareRestore(db, this.#tables);
    this.#groupCommit = new GroupCommit((writes) => this.#commit(writes));
    this.#report = new MaintenanceReport(this.#logger, this.#path, () => this.#acknowledgements.size);
    this.#acknowledgements = new AcknowledgementQueue({
      delete: (values, items) => {
        this.#space.makeRoomFor(() => [
          ...values.map((v) => Buffer.byteLength(v.key)),
          ...items.map(([id]) => id.length),
        ]);
        this.#tables.deleteAcknowledged(values, items);
      },
      chunk: () => this.#space.acknowledgementChunk,
      paused: () => this.#space.checkpointRequested,
      failed: (error, progressed) => {
        this.#report.failed(error);
        this.#space.deletionFailed(isFull(error), progressed);
      },
      deleted: (drained) => {
        this.#report.succeeded();
        this.#afterWrite();
        // Room the refused writes were waiting for may be free now: no need to wait for the tick.
        if (drained) this.#probeIfRefusing();
      },
    });
    // Watched once nothing else can fail: its descriptors may only be closed after the connection
    // is (see OutboxFiles), which `open` closes on a failure.
    this.#files = options.path === ':memory:' ? undefined : this.#environment.watchFiles(options.path);
    this.#lostFiles = new LostFiles({
      files: this.#files,
      path: this.#path,
      syncsEveryCommit,
      logger: this.#logger,
      onLost: () => {
        this.#acknowledgements.clear();
        options.onLost?.();
      },
    });
    this.#space = new LogSpace({
      db,
      path: this.#path,
      files: this.#files,
      environment: this.#environment,
      limits,
      pageSize: this.#pageSize,
      syncsEveryCommit,
      hooks: {
        state: () => (this.#closed ? 'closed' : this.#lostFiles.lost ? 'lost' : 'open'),
        released: () => this.#closeFiles(),
        checkpointed: () => this.#acknowledgements.resume(),
        succeeded: () => this.#report.succeeded(),
        failed: (error) => this.#report.failed(error),
      },
    });
    this.#maintenance = new Maintenance(
      {
        lostFiles: this.#lostFiles,
        space: this.#space,
        acknowledgements: this.#acknowledgements,
        open: () => !this.#closed,
        idle: () => this.#groupCommit.queued === 0 && !this.#tables.hasPending(),
        probeIfRefusing: () => this.#probeIfRefusing(),
      },
      this.#environment,
      options.maintenanceIntervalMs ?? DEFAULT_MAINTENANCE_INTERVAL_MS,
    );
  }

  /** Transactions committed by `append` so far (group commit folds many appends into one). */
  get commits(): number {
    return this.#commits;
  }

  /** Checkpoints of the write-ahead log run so far (all outside `append`'s commits). */
  get checkpoints(): number {
    return this.#space.checkpoints;
  }

  get failure(): OutboxError | undefined {
    return this.#lostFiles.lost ?? this.#writeFailure;
  }

  get lost(): boolean {
    return this.#lostFiles.lost !== undefined;
  }

  pending(): PendingWrite[] {
    return this.#replay(() => this.#tables.pendingValues());
  }

  pendingItems(): PendingItem[] {
    return this.#replay(() => this.#tables.pendingItems());
  }

  quarantineDamaged(): DeadLetter[] {
    try {
      return this.#tables.quarantineDamaged(this.#environment.now());
    } catch (error) {
      throw describeReplayFailure(this.#path, error);
    }
  }

  highestVersion(): number {
    return this.#replay(() => this.#tables.highestVersion());
  }

  append(write: PendingWrite | PendingItem): Promise<void> {
    if (this.#closed) return Promise.reject(new OutboxError('the outbox is closed'));
    if (this.#lostFiles.lost) return Promise.reject(this.#lostFiles.lost);
    return this.#groupCommit.add(write);
  }

  /** Throws when the new versions cannot be recorded (a full disk); the caller keeps the writes queued. */
  anchor(changes: readonly VersionChange[], anchoredThrough: number): void {
    // A lost file will never be replayed, so its rows need no new versions; memory keeps flushing.
    if (this.#lostFiles.lost) return;
    if (this.#closed) throw new OutboxError(`the outbox at ${this.#path} is closed`);
    let wrote: boolean;
    try {
      this.#space.makeRoomForAnchor(this.#unanchored.rows);
      wrote = this.#anchor(changes, anchoredThrough);
    } catch (error) {
      this.#space.keepPagesForAnchor(this.#unanchored.rows.count > 0);
      this.#space.refused(isFull(error));
      throw describeWriteFailure(this.#path, error, this.#space.capped);
    }
    this.#unanchored.anchored();
    if (wrote) this.#confirmWrite();
    // The room kept for the step is free again: writes refused for it need not wait for the tick.
    this.#probeIfRefusing();
  }

  /**
   * Writes the pending writes of a lost outbox (rebuilt from memory) and its dead letters into this
   * one, in one transaction, admitted like a commit. Throws `OutboxError` when it cannot.
   */
  restore(rows: OutboxRows, letters: readonly DeadLetter[]): void {
    const all = [...rows.values, ...rows.items, ...rows.appended];
    const rowBytes = () => all.map(rowByteLength);
    const unanchored = this.#unanchored.with(all);
    try {
      this.#space.admit(rowBytes, this.#hasBacklog, () => unanchored);
      this.#space.makeRoomFor(rowBytes);
      this.#space.keepPagesForAnchor(unanchored.count > 0);
      this.#restore(rows, letters);
      this.#unanchored.committed(unanchored);
    } catch (error) {
      this.#space.refused(isFull(error) || error instanceof OutboxError);
      throw describeWriteFailure(this.#path, error, this.#space.capped);
    }
    this.#confirmWrite();
  }

  reservedVersions(): Array<[number, number]> {
    try {
      return reservationsLeft(this.#db, this.#tables.hasPending(), (error) =>
        this.#logger?.debug(
          { err: error, path: this.#path },
          'could not clear reserved versions; retried on the next start',
        ),
      );
    } catch (error) {
      throw describeReplayFailure(this.#path, error);
    }
  }

  /** Never throws: rows are deleted in the background, and retried when the disk is full. */
  acknowledge(writes: readonly Acknowledged[]): void {
    if (this.#closed || this.#lostFiles.lost) return;
    this.#acknowledgements.add(writes);
  }

  deadLetter(letter: DeadLetter): void {
    if (this.#lostFiles.lost) throw this.#lostFiles.lost;
    this.#tables.deadLetter(letter);
    this.#confirmWrite();
  }

  deadLetters(): DeadLetter[] {
    return this.#tables.deadLetters();
  }

  requeueDeadLetters(keys?: readonly string[]): DeadLetter[] {
    if (this.#lostFiles.lost) throw this.#lostFiles.lost;
    const letters = this.#tables.requeueDeadLetters(keys, this.#environment.now());
    this.#confirmWrite();
    return letters;
  }

  close(): Promise<void> {
    if (this.#released) return this.#released;
    this.#groupCommit.commitQueued();
    this.#closed = true;
    this.#acknowledgements.deleteNow();
    this.#acknowledgements.stop();
    this.#maintenance.stop();
    this.#db.close();
    if (this.#space.checkpointRequested) {
      // A sync still running on the thread pool closes the handles when it completes.
      this.#released = new Promise((resolve) => (this.#onFilesClosed = resolve));
    } else {
      this.#closeFiles();
      this.#released = Promise.resolve();
    }
    return this.#released;
  }

  /** Rows still pending, acknowledged ones deleted first; a damaged page read here is named as such. */
  #replay<T>(read: () => T): T {
    this.#acknowledgements.deleteNow();
    try {
      return read();
    } catch (error) {
      throw describeReplayFailure(this.#path, error);
    }
  }

  #closeFiles(): void {
    this.#files?.close();
    this.#onFilesClosed?.();
  }

  /** Commits a group; returns why it must not be acknowledged, if it must not. */
  #commit(writes: Array<PendingWrite | PendingItem>): OutboxError | undefined {
    if (this.#lostFiles.lost) return this.#lostFiles.lost;
    const rowBytes = () => writes.map(rowByteLength);
    const unanchored = this.#unanchored.with(writes);
    try {
      this.#space.admit(rowBytes, this.#hasBacklog, () => unanchored);
      this.#space.makeRoomFor(rowBytes);
      this.#space.keepPagesForAnchor(unanchored.count > 0);
      this.#tables.commit(writes);
      this.#unanchored.committed(unanchored);
      this.#commits++;
    } catch (error) {
      this.#space.refused(isFull(error) || error instanceof OutboxError);
      this.#writeFailure = describeWriteFailure(this.#path, error, this.#space.capped);
      return this.#writeFailure;
    }
    // The commit went into the files opened; if those are no longer the ones at the path, it is lost.
    const lost = this.#afterWrite();
    if (lost) return lost;
    this.#writeFailure = undefined;
    return undefined;
  }

  /** Checks the files after a write transaction; returns (and keeps) the error when they were replaced. */
  #afterWrite(): OutboxError | undefined {
    this.#maintenance.wrote();
    const walBytes = this.#lostFiles.afterWrite();
    if (walBytes !== undefined) this.#space.committed(walBytes);
    return this.#lostFiles.lost;
  }

  /** Checks the files after a write outside `append`; throws when they were replaced. */
  #confirmWrite(): void {
    const lost = this.#afterWrite();
    if (lost) throw lost;
  }

  /** While writes are refused: a write that touches one page succeeds once the outbox has room again. */
  #probeIfRefusing(): void {
    if (!this.#writeFailure || this.#closed || this.#lostFiles.lost) return;
    try {
      this.#space.admit(
        () => [this.#pageSize],
        this.#hasBacklog,
        () => this.#unanchored.rows,
      );
      if (!this.#space.hasFreePage()) return;
      this.#tables.touch();
    } catch {
      return;
    }
    if (this.#afterWrite()) return;
    this.#logger?.info({ path: this.#path }, 'the outbox accepts writes again');
    this.#writeFailure = undefined;
  }
}
