import Database from 'better-sqlite3';
import type {
  ApplyResult,
  FeedPage,
  FeedReadOptions,
  Storage,
  StorageCallOptions,
  StoredEntry,
  VersionedWrite,
} from '../../src/index.js';

/** Accepts every write and keeps nothing: isolates the cache's own costs (CPU, memory). */
export class NullStorage implements Storage {
  async getMany(): Promise<Map<string, StoredEntry>> {
    return new Map();
  }

  async apply(writes: VersionedWrite[]): Promise<ApplyResult[]> {
    return writes.map(() => ({ status: 'applied' }));
  }

  async highWaterMark(): Promise<number> {
    return 0;
  }
}

/** Never answers a write until the call is aborted (the cache closing): keeps writes pending. */
export class ParkedStorage extends NullStorage {
  override apply(_writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    return new Promise((_resolve, reject) => {
      const signal = opts?.signal;
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }
}

/** Counts the writes and value bytes that reach an inner store. */
export class CountingStorage implements Storage {
  readonly counts = { applyCalls: 0, writes: 0, valueBytes: 0 };
  readonly #inner: Storage;

  constructor(inner: Storage) {
    this.#inner = inner;
  }

  getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    return this.#inner.getMany(keys, opts);
  }

  apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    this.counts.applyCalls++;
    this.counts.writes += writes.length;
    for (const write of writes) {
      this.counts.valueBytes += write.json === null ? 0 : Buffer.byteLength(write.json);
      for (const item of write.items ?? []) this.counts.valueBytes += Buffer.byteLength(item.json);
    }
    return this.#inner.apply(writes, opts);
  }

  highWaterMark(opts?: StorageCallOptions): Promise<number> {
    return this.#inner.highWaterMark(opts);
  }

  async close(): Promise<void> {
    await this.#inner.close?.();
  }
}

/**
 * Counts the change-feed reads that reach an inner store, their pages, the changes they bring and
 * their durations; everything else passes through. For a SqliteStorage, `tableReads` counts the
 * feed reads that opened a read transaction on the log (the others were answered from
 * `PRAGMA data_version`): better-sqlite3's `Database.prototype.transaction` is wrapped while a
 * feed read runs (it runs synchronously inside `changes`), see `countSqliteFeedTableReads`.
 */
export class FeedCountingStorage implements Storage {
  readonly counts = { changesCalls: 0, tableReads: 0, changes: 0, morePages: 0, failures: 0 };
  /** Duration of each feed read, in ns. */
  readonly durationsNs: number[] = [];
  readonly #inner: Storage;

  constructor(inner: Storage) {
    this.#inner = inner;
  }

  reset(): void {
    for (const name of Object.keys(this.counts) as Array<keyof typeof this.counts>) this.counts[name] = 0;
    this.durationsNs.length = 0;
  }

  getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    return this.#inner.getMany(keys, opts);
  }

  apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    return this.#inner.apply(writes, opts);
  }

  highWaterMark(opts?: StorageCallOptions): Promise<number> {
    return this.#inner.highWaterMark(opts);
  }

  async changes(after: string | null, opts?: FeedReadOptions): Promise<FeedPage> {
    const changes = this.#inner.changes?.bind(this.#inner);
    if (!changes) throw new Error('FeedCountingStorage: the inner store has no change feed');
    this.counts.changesCalls++;
    const started = process.hrtime.bigint();
    const before = sqliteTransactions.count;
    sqliteTransactions.watching++;
    let pending: Promise<FeedPage>;
    try {
      pending = changes(after, opts);
    } finally {
      sqliteTransactions.watching--;
    }
    this.counts.tableReads += sqliteTransactions.count - before;
    try {
      const page = await pending;
      this.durationsNs.push(Number(process.hrtime.bigint() - started));
      this.counts.changes += page.changes.length;
      if (page.more) this.counts.morePages++;
      return page;
    } catch (error) {
      this.counts.failures++;
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.#inner.close?.();
  }
}

/** Transactions opened through better-sqlite3 while a `FeedCountingStorage` feed read runs. */
const sqliteTransactions = { watching: 0, count: 0 };
let sqliteWrapped = false;

/** Wraps `Database.prototype.transaction` (once, for this process) for `FeedCountingStorage`. */
export function countSqliteFeedTableReads(): void {
  if (sqliteWrapped) return;
  sqliteWrapped = true;
  const proto = Database.prototype as unknown as { transaction: (...args: unknown[]) => unknown };
  const original = proto.transaction;
  proto.transaction = function (this: unknown, ...args: unknown[]) {
    if (sqliteTransactions.watching > 0) sqliteTransactions.count++;
    return original.apply(this, args);
  };
}
