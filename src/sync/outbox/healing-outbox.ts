import { existsSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { type FileIdentity, identify, isSameFile } from '../../storage/sqlite-file/file-identity.js';
import { OutboxError } from '../errors.js';
import type { DeadLetter } from '../types.js';
import { systemEnvironment } from './environment.js';
import type { Acknowledged, Outbox, OutboxRows, PendingItem, PendingWrite, VersionChange } from './outbox.js';
import { SqliteOutbox, type SqliteOutboxOptions } from './sqlite-outbox.js';

const DEFAULT_RETRY_INTERVAL_MS = 1_000;
const scheduleSoon = globalThis.setImmediate.bind(globalThis);

/**
 * The outbox the cache uses over a file: a `SqliteOutbox`, replaced by a new one at the same path
 * when its file is deleted or replaced underneath it (SPEC invariant 14). The file-level outbox
 * only notices the loss; this class releases the lost file, opens the new one and writes into it
 * the rows the cache rebuilds from memory (see `Outbox.reopen`). While no new file could be written
 * (a full disk, the directory gone, a foreign file at the path), writes are refused as by a lost
 * file, and the listener is called again on every maintenance tick until it works.
 */
export class HealingOutbox implements Outbox {
  readonly durable = true;
  readonly #options: SqliteOutboxOptions;
  readonly #logger: Logger | undefined;
  /** The file in use; undefined after it was released and no new one could be written. */
  #current: SqliteOutbox | undefined;
  /** Its log as opened: one left at the path after its file was lost belongs to the lost file. */
  #currentLog: FileIdentity | undefined;
  #listener: (() => void) | undefined;
  /** Why the last reopen failed, until one succeeds. */
  #reopenFailure: OutboxError | undefined;
  /** Dead letters read from the lost file, kept until a new file holds them. */
  #carriedLetters: DeadLetter[] = [];
  /** Stops the retries on the maintenance tick; set while the file is lost. */
  #stopRetrying: (() => void) | undefined;
  #closed = false;

  /** Opens the outbox at `options.path`; fails as `SqliteOutbox.open` does. */
  static open(options: SqliteOutboxOptions): HealingOutbox {
    return new HealingOutbox(options);
  }

  private constructor(options: SqliteOutboxOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#current = this.#openFile();
  }

  get failure(): OutboxError | undefined {
    return this.#current ? this.#current.failure : this.#reopenFailure;
  }

  get lost(): boolean {
    return this.#current === undefined || this.#current.lost;
  }

  onLost(listener: () => void): void {
    this.#listener = listener;
  }

  pending(): PendingWrite[] {
    return this.#open().pending();
  }

  pendingItems(): PendingItem[] {
    return this.#open().pendingItems();
  }

  quarantineDamaged(): DeadLetter[] {
    return this.#open().quarantineDamaged();
  }

  highestVersion(): number {
    return this.#open().highestVersion();
  }

  reservedVersions(): Array<[number, number]> {
    return this.#open().reservedVersions();
  }

  append(write: PendingWrite | PendingItem): Promise<void> {
    if (!this.#current) return Promise.reject(this.failure);
    return this.#current.append(write);
  }

  anchor(changes: readonly VersionChange[], anchoredThrough: number): void {
    // Without a file nothing will be replayed; memory holds the new versions and a reopen writes them.
    this.#current?.anchor(changes, anchoredThrough);
  }

  acknowledge(writes: readonly Acknowledged[]): void {
    this.#current?.acknowledge(writes);
  }

  deadLetter(letter: DeadLetter): void {
    this.#open().deadLetter(letter);
  }

  deadLetters(): DeadLetter[] {
    return this.#current ? this.#current.deadLetters() : [...this.#carriedLetters];
  }

  requeueDeadLetters(keys?: readonly string[]): DeadLetter[] {
    return this.#open().requeueDeadLetters(keys);
  }

  async reopen(rows: () => OutboxRows): Promise<void> {
    if (this.#closed) throw new OutboxError(`the outbox at ${this.#options.path} is closed`);
    const lost = this.#current;
    if (lost && !lost.lost) return;
    const lostReason = this.failure;
    if (lost) await this.#release(lost);
    if (this.#closed) throw new OutboxError(`the outbox at ${this.#options.path} is closed`);
    let fresh: SqliteOutbox | undefined;
    let restored: OutboxRows;
    try {
      this.#assertDirectory();
      fresh = this.#openFile();
      restored = rows();
      fresh.restore(restored, this.#carriedLetters);
    } catch (error) {
      await fresh?.close();
      throw this.#failed(lostReason, error);
    }
    this.#current = fresh;
    this.#reopenFailure = undefined;
    this.#carriedLetters = [];
    this.#stopRetrying?.();
    this.#stopRetrying = undefined;
    this.#logger?.warn(
      {
        path: this.#options.path,
        writes: restored.values.length + restored.items.length + restored.appended.length,
        values: restored.values.length,
        items: restored.items.length,
        deadLetters: this.deadLetters().length,
      },
      'the outbox file was deleted or replaced; a new one was written at its path with every pending write from memory',
    );
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#stopRetrying?.();
    this.#stopRetrying = undefined;
    return this.#current?.close() ?? Promise.resolve();
  }

  #openFile(): SqliteOutbox {
    const file = SqliteOutbox.open({ ...this.#options, onLost: () => this.#noticeLost() });
    this.#currentLog = identify(`${this.#options.path}-wal`);
    return file;
  }

  #open(): SqliteOutbox {
    if (!this.#current) throw this.failure;
    return this.#current;
  }

  /** Asks the cache for a heal on the next turn (never inside the commit or call that noticed), then on every tick. */
  #noticeLost(): void {
    if (this.#closed) return;
    scheduleSoon(() => {
      if (!this.#closed) this.#listener?.();
    });
    if (this.#stopRetrying) return;
    const environment = this.#options.environment ?? systemEnvironment;
    const interval = this.#options.maintenanceIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS;
    this.#stopRetrying = environment.every(interval, () => {
      if (!this.#closed && this.lost) this.#listener?.();
    });
  }

  /**
   * Closes the lost file before a new one is opened: its exclusive lock (when only the log was
   * deleted, the main file is still the one at the path) and its descriptors must be gone first.
   * Its dead letters are read first: they would be lost with it.
   */
  async #release(lost: SqliteOutbox): Promise<void> {
    try {
      this.#carriedLetters = lost.deadLetters();
    } catch (error) {
      this.#logger?.warn(
        { err: error, path: this.#options.path },
        'the dead letters of the lost outbox file could not be read; they are not carried over',
      );
    }
    this.#current = undefined;
    await lost.close();
    // A main file replaced under its log leaves the old log at the path, and SQLite would apply its
    // pages to whatever file is opened there next. What it held is in memory; it goes.
    const logPath = `${this.#options.path}-wal`;
    if (this.#currentLog && isSameFile(this.#currentLog, identify(logPath))) unlinkSync(logPath);
    this.#currentLog = undefined;
  }

  /** A directory that disappeared is not made again: it may be a volume that went away. */
  #assertDirectory(): void {
    const directory = dirname(this.#options.path);
    if (!existsSync(directory)) {
      throw new OutboxError(`its directory ${directory} no longer exists`);
    }
  }

  #failed(lostReason: Error | undefined, error: unknown): OutboxError {
    const reason = error instanceof Error ? error.message : String(error);
    const first = this.#reopenFailure === undefined;
    this.#reopenFailure = new OutboxError(
      `the outbox at ${this.#options.path} was deleted or replaced while the cache was running, and a new one ` +
        `could not be written there: ${reason}. Writes are refused until it can (retried every maintenance tick); ` +
        'writes accepted before keep flushing to the store from memory',
      { cause: error },
    );
    const log = { err: error, path: this.#options.path, lost: lostReason?.message };
    if (first) this.#logger?.error(log, 'could not write a new outbox file; refusing writes until it can');
    else this.#logger?.debug(log, 'could not write a new outbox file yet');
    return this.#reopenFailure;
  }
}
