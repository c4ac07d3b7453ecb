import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { OutboxError } from '../errors.js';
import type { OutboxEnvironment, WatchedFiles } from './environment.js';
import {
  acknowledgementChunk,
  anchorGrowthPages,
  anchorRewriteLogBytes,
  type CheckpointMoment,
  checkpointFor,
  checkpointThreshold,
  hasDiskRoom,
  isLowOnDisk,
  type LogState,
  type UnanchoredRows,
} from './space-policy.js';
import { type WalLimits, walBytesUpperBound } from './wal-limits.js';

const scheduleSoon = globalThis.setImmediate.bind(globalThis);
const COMMITTED: CheckpointMoment = { kind: 'committed' };

type CheckpointMode = 'PASSIVE' | 'TRUNCATE';

/** What the log's space tells the rest of the outbox, and asks of it. */
export interface LogSpaceHooks {
  /** 'closed': a background checkpoint releases the files instead of running. */
  state(): 'open' | 'closed' | 'lost';
  /** The outbox closed while a log sync still held a descriptor; it is free now. */
  released(): void;
  /** A background checkpoint ran: deletions paused for it may resume. */
  checkpointed(): void;
  /** A checkpoint succeeded, or failed (never thrown from the background). */
  succeeded(): void;
  failed(error: unknown): void;
}

export interface LogSpaceOptions {
  db: Database.Database;
  path: string;
  /** Undefined for an in-memory outbox: no disk to measure. */
  files: WatchedFiles | undefined;
  environment: OutboxEnvironment;
  limits: WalLimits;
  pageSize: number;
  /** Durability `fsync`: every commit already synced the log. */
  syncsEveryCommit: boolean;
  hooks: LogSpaceHooks;
}

/**
 * The log's space: measures free disk and the log, admits writes on a nearly full disk, keeps a
 * capped outbox under its cap, and runs the checkpoints `checkpointFor` asks for.
 *
 * The log is never checkpointed inside a commit (`wal_autocheckpoint = 0`): in the background once
 * it grows past its threshold, on the maintenance tick, or at once when a write needs the room.
 */
export class LogSpace {
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #directory: string;
  readonly #files: WatchedFiles | undefined;
  readonly #environment: OutboxEnvironment;
  readonly #limits: WalLimits;
  readonly #pageSize: number;
  readonly #syncsEveryCommit: boolean;
  readonly #hooks: LogSpaceHooks;
  /** The log as last measured: updated in place, as it is read on every commit. */
  readonly #log: LogState;
  #mainBytes = 0;
  /** Free bytes on the outbox's filesystem, as last measured. */
  #freeBytes = Number.POSITIVE_INFINITY;
  #checkpointRequested = false;
  #checkpoints = 0;
  /** Under a cap, the page limit writes see now: lower while pages are kept for the anchoring step. */
  #pageLimit: number | undefined;

  constructor(options: LogSpaceOptions) {
    this.#db = options.db;
    this.#path = options.path;
    this.#directory = dirname(options.path);
    this.#files = options.files;
    this.#environment = options.environment;
    this.#limits = options.limits;
    this.#pageSize = options.pageSize;
    this.#syncsEveryCommit = options.syncsEveryCommit;
    this.#hooks = options.hooks;
    this.#log = {
      walBytes: 0,
      walBytesAtCheckpoint: 0,
      thresholdBytes: options.limits.checkpointAtBytes,
      walBudgetBytes: options.limits.walBudgetBytes,
    };
    this.#pageLimit = options.limits.maxPageCount;
    if (this.#files) this.#measureFreeSpace();
  }

  /** Checkpoints run so far (all outside commits). */
  get checkpoints(): number {
    return this.#checkpoints;
  }

  /** A background checkpoint is scheduled or its log sync is under way. */
  get checkpointRequested(): boolean {
    return this.#checkpointRequested;
  }

  /** Under `maxFileBytes`. */
  get capped(): boolean {
    return this.#limits.maxPageCount !== undefined;
  }

  get lowOnDisk(): boolean {
    return isLowOnDisk(this.#freeBytes);
  }

  /** Acknowledged rows to delete per transaction now. */
  get acknowledgementChunk(): number {
    return acknowledgementChunk(this.#freeBytes);
  }

  /** Reads the free disk space again and moves the checkpoint threshold with it. */
  #measureFreeSpace(): void {
    const free = this.#environment.freeBytes(this.#directory);
    if (free === undefined) return;
    this.#freeBytes = free;
    this.#log.thresholdBytes = checkpointThreshold(this.#limits.checkpointAtBytes, free);
  }

  /** A write transaction committed and the log was measured at `walBytes`. */
  committed(walBytes: number): void {
    this.#log.walBytes = walBytes;
    this.#run(checkpointFor(COMMITTED, this.#log));
  }

  /** A commit was refused; `forRoom` when for lack of room. */
  refused(forRoom: boolean): void {
    this.#run(checkpointFor({ kind: 'refused', forRoom }, this.#log));
  }

  /** Deleting acknowledged rows failed (see `checkpointFor`). */
  deletionFailed(full: boolean, progressed: boolean): void {
    this.#run(checkpointFor({ kind: 'deletion-failed', full, progressed }, this.#log));
  }

  /** The maintenance tick, with the log measured by path at `walBytes`. */
  tick(walBytes: number, moment: Omit<Extract<CheckpointMoment, { kind: 'tick' }>, 'kind'>): void {
    this.#log.walBytes = walBytes;
    this.#measureFreeSpace();
    this.#run(checkpointFor({ kind: 'tick', ...moment }, this.#log));
  }

  /**
   * Under a file cap, checkpoints (and empties) the log before a transaction that might not fit in
   * what is left of its share. `rowBytes` is only computed when capped. Throws when that fails.
   */
  makeRoomFor(rowBytes: () => number[]): void {
    const { maxPageCount } = this.#limits;
    if (maxPageCount === undefined) return;
    const logBytes = () => walBytesUpperBound(rowBytes(), this.#pageSize, maxPageCount);
    if (checkpointFor({ kind: 'before-commit', logBytes }, this.#log) === 'truncate-now') {
      this.#checkpoint('TRUNCATE');
    }
  }

  /**
   * On a nearly full disk, refuses (throws) a write that would leave too little room to clear the
   * backlog later (see `hasDiskRoom`). `backlog` tells whether rows wait to be deleted, `unanchored`
   * which rows the anchoring step would rewrite once this write is in.
   */
  admit(rowBytes: () => number[], backlog: () => boolean, unanchored: () => UnanchoredRows): void {
    if (!this.#files || !this.lowOnDisk) return;
    const logBytes = walBytesUpperBound(rowBytes(), this.#pageSize, Number.POSITIVE_INFINITY);
    const room = () => this.#hasDiskRoom(logBytes, backlog(), this.#anchorBytes(unanchored()));
    this.#measureDisk();
    if (room()) return;
    if (
      checkpointFor({ kind: 'no-disk-room' }, this.#log) === 'truncate-now' &&
      this.#tryCheckpoint('TRUNCATE')
    ) {
      this.#measureDisk();
      if (room()) return;
    }
    throw new OutboxError(
      `the outbox at ${this.#path} could not record the write: the disk is nearly full (${this.#freeBytes} bytes free); ` +
        'the rest is kept for clearing the backlog. It recovers once space is freed or the store acknowledges the backlog',
    );
  }

  /**
   * Before the anchoring step rewrites `rows`, makes the room admission kept for it usable: under a
   * cap the log is emptied first if the rewrite might overrun its share (which always holds one
   * transaction started on an empty log); on a nearly full disk the log is folded back and emptied
   * when the free space measured now would not hold the rewrite. Never throws: the rewrite is tried.
   */
  makeRoomForAnchor(rows: UnanchoredRows): void {
    if (rows.count === 0) return;
    this.keepPagesForAnchor(false);
    const logBytes = () => this.#anchorBytes(rows);
    if (checkpointFor({ kind: 'before-commit', logBytes }, this.#log) === 'truncate-now') {
      this.#tryCheckpoint('TRUNCATE');
    }
    if (!this.#files || !this.lowOnDisk) return;
    this.#measureDisk();
    if (this.#hasDiskRoom(logBytes(), false, 0)) return;
    if (checkpointFor({ kind: 'no-disk-room' }, this.#log) === 'truncate-now')
      this.#tryCheckpoint('TRUNCATE');
  }

  /**
   * Under a cap, while rows wait for the anchoring step (`keep`), writes see a page limit lowered by
   * the pages its rewrite may add (`anchorGrowthPages` of every page), so that an outbox filled with
   * unanchored writes still has them when the step runs (`makeRoomForAnchor` gives them back). A
   * file already past the lowered limit keeps its size as the limit (SQLite never lowers it further).
   */
  keepPagesForAnchor(keep: boolean): void {
    const { maxPageCount } = this.#limits;
    if (maxPageCount === undefined) return;
    const limit = keep ? Math.max(1, maxPageCount - anchorGrowthPages(maxPageCount)) : maxPageCount;
    if (limit === this.#pageLimit) return;
    this.#pageLimit = this.#db.pragma(`max_page_count = ${limit}`, { simple: true }) as number;
  }

  /** Under a cap, whether the main file can take another page (a free one inside, or room to grow). */
  hasFreePage(): boolean {
    const limit = this.#pageLimit;
    if (limit === undefined) return true;
    const pages = this.#db.pragma('page_count', { simple: true }) as number;
    return pages < limit || (this.#db.pragma('freelist_count', { simple: true }) as number) > 0;
  }

  #run(checkpoint: 'none' | 'background' | 'truncate-now'): void {
    if (checkpoint === 'background') this.#requestCheckpoint();
    else if (checkpoint === 'truncate-now') this.#tryCheckpoint('TRUNCATE');
  }

  /**
   * Free space and both files' sizes. The log's too: one left by an earlier process (a crash) is
   * otherwise unknown until the first tick, and a write before it would be refused without trying
   * a checkpoint.
   */
  #measureDisk(): void {
    this.#measureFreeSpace();
    const sizes = this.#files?.check();
    if (!sizes) return;
    this.#log.walBytes = sizes.walBytes;
    this.#mainBytes = sizes.mainBytes;
  }

  #hasDiskRoom(logBytes: number, backlog: boolean, anchorBytes: number): boolean {
    const pageCount = this.#db.pragma('page_count', { simple: true }) as number;
    return hasDiskRoom({
      freeBytes: this.#freeBytes,
      pageSize: this.#pageSize,
      pageCount,
      mainBytes: this.#mainBytes,
      logBytes,
      backlog,
      anchorBytes,
    });
  }

  /** Log bytes the anchoring step's rewrite of `rows` may need; the pages in use are read only when some are pending. */
  #anchorBytes(rows: UnanchoredRows): number {
    if (rows.count === 0) return 0;
    const pageCount = this.#db.pragma('page_count', { simple: true }) as number;
    const freePages = this.#db.pragma('freelist_count', { simple: true }) as number;
    return anchorRewriteLogBytes(rows, this.#pageSize, pageCount - freePages);
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
      const state = this.#hooks.state();
      if (state === 'closed') return this.#hooks.released();
      if (state === 'lost') return;
      if (this.#tryCheckpoint('PASSIVE')) this.#hooks.checkpointed();
    };
    // With durability `fsync` every commit already synced the log.
    if (this.#files === undefined || this.#syncsEveryCommit) scheduleSoon(run);
    else this.#environment.syncLog(this.#files.walFd, run);
  }

  #tryCheckpoint(mode: CheckpointMode): boolean {
    try {
      this.#checkpoint(mode);
    } catch (error) {
      this.#hooks.failed(error);
      return false;
    }
    this.#hooks.succeeded();
    return true;
  }

  #checkpoint(mode: CheckpointMode): void {
    this.#db.pragma(`wal_checkpoint(${mode})`);
    this.#checkpoints++;
    if (!this.#files) return;
    this.#log.walBytes = this.#files.check().walBytes;
    this.#log.walBytesAtCheckpoint = this.#log.walBytes;
    this.#measureFreeSpace();
  }
}
