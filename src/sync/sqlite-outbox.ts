import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { OutboxError } from '../cache/errors.js';
import type { DeadLetter, Durability } from '../cache/types.js';
import type { Outbox, PendingWrite, Remint } from './outbox.js';

export interface SqliteOutboxOptions {
  path: string;
  durability: Exclude<Durability, 'none'>;
  /** Cap on the outbox file; writes past it reject (as on a full disk). Default: no cap. */
  maxFileBytes?: number;
}

type Row = [
  key: string,
  version: number,
  json: string | null,
  expiresAt: number | null,
  queuedAt: number,
  unanchored: number,
];

const SCHEMA_VERSION = 2;

/**
 * Group commit waits for the next turn of the event loop, not a microtask: in a server, concurrent
 * writers arrive in separate I/O callbacks, and only a macrotask boundary lets all of them join one
 * transaction. Bound at load so fake timers in tests cannot stall the outbox.
 */
const scheduleCommit: (commit: () => void) => void = globalThis.setImmediate.bind(globalThis);

/**
 * The local write-ahead outbox: one row per dirty key (its latest version), plus dead letters.
 * Concurrent `append` calls in one tick share one transaction (group commit), and each caller
 * resolves only after that transaction commits.
 */
export class SqliteOutbox implements Outbox {
  readonly durable = true;
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #upsert: Database.Statement;
  readonly #ack: Database.Statement;
  readonly #insertLetter: Database.Statement;
  readonly #commitGroup: (writes: PendingWrite[]) => void;
  readonly #ackAll: (writes: ReadonlyArray<{ key: string; version: number }>) => void;
  readonly #remintAll: (changes: readonly Remint[]) => void;
  #group: Array<{ write: PendingWrite; resolve: () => void; reject: (error: Error) => void }> = [];
  #closed = false;
  #commits = 0;

  static open(options: SqliteOutboxOptions): SqliteOutbox {
    return new SqliteOutbox(options);
  }

  private constructor(options: SqliteOutboxOptions) {
    this.#path = options.path;
    try {
      if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
      this.#db = new Database(options.path, { timeout: 0 });
    } catch (error) {
      throw new OutboxError(`cannot open the outbox at ${options.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    try {
      this.#configure(options);
      this.#migrate();
    } catch (error) {
      this.#db.close();
      throw describeOpenFailure(options.path, error);
    }
    this.#upsert = this.#db.prepare(
      `INSERT INTO pending (key, version, json, expires_at, queued_at, unanchored) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET version = excluded.version, json = excluded.json,
         expires_at = excluded.expires_at, unanchored = excluded.unanchored
       WHERE excluded.version > pending.version`,
    );
    this.#ack = this.#db.prepare('DELETE FROM pending WHERE key = ? AND version = ?');
    this.#ackAll = this.#db.transaction((writes: ReadonlyArray<{ key: string; version: number }>) => {
      for (const w of writes) this.#ack.run(w.key, w.version);
    });
    this.#insertLetter = this.#db.prepare(
      `INSERT INTO dead_letters (key, version, json, expires_at, error, failed_at) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    const raiseHighest = this.#db.prepare(
      `UPDATE meta SET value = max(value, ?) WHERE name = 'highest_version'`,
    );
    this.#commitGroup = this.#db.transaction((writes: PendingWrite[]) => {
      let highest = 0;
      for (const w of writes) {
        this.#upsert.run(w.key, w.version, w.json, w.expiresAt, w.queuedAt, w.unanchored ? 1 : 0);
        if (w.version > highest) highest = w.version;
      }
      raiseHighest.run(highest);
    });
    const reversion = this.#db.prepare(
      'UPDATE pending SET version = ?, unanchored = 0 WHERE key = ? AND version = ?',
    );
    this.#remintAll = this.#db.transaction((changes: readonly Remint[]) => {
      let highest = 0;
      for (const c of changes) {
        reversion.run(c.to, c.key, c.from);
        if (c.to > highest) highest = c.to;
      }
      raiseHighest.run(highest);
    });
  }

  /** Transactions committed by `append` so far (group commit folds many appends into one). */
  get commits(): number {
    return this.#commits;
  }

  pending(): PendingWrite[] {
    const rows = this.#db
      .prepare('SELECT key, version, json, expires_at, queued_at, unanchored FROM pending ORDER BY queued_at')
      .raw()
      .all() as Row[];
    return rows.map(([key, version, json, expiresAt, queuedAt, unanchored]) => ({
      key,
      version,
      json,
      expiresAt,
      queuedAt,
      ...(unanchored ? { unanchored: true } : {}),
    }));
  }

  highestVersion(): number {
    const row = this.#db.prepare(`SELECT value FROM meta WHERE name = 'highest_version'`).get() as
      | { value: number }
      | undefined;
    return row?.value ?? 0;
  }

  append(write: PendingWrite): Promise<void> {
    if (this.#closed) return Promise.reject(new OutboxError('the outbox is closed'));
    return new Promise((resolve, reject) => {
      if (this.#group.length === 0) scheduleCommit(() => this.#commitPending());
      this.#group.push({ write, resolve, reject });
    });
  }

  remint(changes: readonly Remint[]): void {
    if (this.#closed) throw new OutboxError('the outbox is closed');
    this.#remintAll(changes);
  }

  acknowledge(writes: ReadonlyArray<{ key: string; version: number }>): void {
    if (this.#closed) return;
    this.#ackAll(writes);
  }

  deadLetter(letter: DeadLetter): void {
    this.#db.transaction(() => {
      this.#ack.run(letter.key, letter.version);
      this.#insertLetter.run(
        letter.key,
        letter.version,
        letter.json,
        letter.expiresAt,
        letter.error,
        letter.failedAt,
      );
    })();
  }

  deadLetters(): DeadLetter[] {
    const rows = this.#db
      .prepare('SELECT key, version, json, expires_at, error, failed_at FROM dead_letters ORDER BY id')
      .raw()
      .all() as Array<[string, number, string | null, number | null, string, number]>;
    return rows.map(([key, version, json, expiresAt, error, failedAt]) => ({
      key,
      version,
      json,
      expiresAt,
      error,
      failedAt,
    }));
  }

  requeueDeadLetters(keys?: readonly string[]): DeadLetter[] {
    return this.#db.transaction(() => {
      const letters = this.deadLetters().filter((l) => !keys || keys.includes(l.key));
      const remove = this.#db.prepare('DELETE FROM dead_letters WHERE key = ? AND version = ?');
      const now = Date.now();
      for (const l of letters) {
        remove.run(l.key, l.version);
        this.#upsert.run(l.key, l.version, l.json, l.expiresAt, now, 0);
      }
      return letters;
    })();
  }

  close(): void {
    if (this.#closed) return;
    this.#commitPending();
    this.#closed = true;
    this.#db.close();
  }

  #commitPending(): void {
    const group = this.#group;
    if (group.length === 0) return;
    this.#group = [];
    try {
      this.#commitGroup(group.map((g) => g.write));
      this.#commits++;
    } catch (error) {
      const failure = new OutboxError(
        `the outbox at ${this.#path} could not record the write: ${(error as Error).message}`,
        { cause: error },
      );
      for (const g of group) g.reject(failure);
      return;
    }
    for (const g of group) g.resolve();
  }

  #configure(options: SqliteOutboxOptions): void {
    // Exclusive locking: the first transaction below takes the file's write lock and keeps it until
    // close, so a second process (or a second cache in this one) fails fast instead of both
    // replaying and flushing the same rows. It also keeps the WAL index in heap memory.
    this.#db.pragma('locking_mode = EXCLUSIVE');
    this.#db.pragma('journal_mode = WAL');
    // WAL appends each commit to the log with write(2) before the transaction returns, so a commit
    // survives the death of the process at any `synchronous` level. NORMAL syncs only at checkpoints
    // (power loss may drop the newest commits but never corrupts the file); FULL also fsyncs the log
    // on every commit, which is what surviving power loss requires.
    this.#db.pragma(`synchronous = ${options.durability === 'fsync' ? 'FULL' : 'NORMAL'}`);
    if (options.maxFileBytes !== undefined) {
      const pageSize = this.#db.pragma('page_size', { simple: true }) as number;
      this.#db.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxFileBytes / pageSize))}`);
    }
    this.#db.exec('BEGIN EXCLUSIVE; COMMIT;');
  }

  #migrate(): void {
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new OutboxError(
        `the outbox at ${this.#path} has schema version ${version}, newer than this version of hybrid-cache understands (${SCHEMA_VERSION})`,
      );
    }
    if (version === SCHEMA_VERSION) return;
    this.#db.transaction(() => {
      if (version < 1) this.#createV1();
      // unanchored: minted before the clock had read the store's version high-water mark, and never
      // sent. Such a row is given a new version before it is sent; every other row keeps its own.
      this.#db.exec(`
        ALTER TABLE pending ADD COLUMN unanchored INTEGER NOT NULL DEFAULT 0;
        PRAGMA user_version = ${SCHEMA_VERSION};
      `);
    })();
  }

  #createV1(): void {
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS pending (
        key TEXT PRIMARY KEY NOT NULL,
        version INTEGER NOT NULL,
        json TEXT,
        expires_at INTEGER,
        queued_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      -- highest_version: the clock's high-water mark. Versions already flushed leave no pending row,
      -- and a restarted process whose wall clock is behind (NTP step, or more than 1024 writes/ms)
      -- must still mint versions above them, or its new writes would lose to its old ones.
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
      INSERT OR IGNORE INTO meta (name, value) VALUES ('highest_version', 0);
      CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        json TEXT,
        expires_at INTEGER,
        error TEXT NOT NULL,
        failed_at INTEGER NOT NULL
      );
    `);
  }
}

function describeOpenFailure(path: string, error: unknown): OutboxError {
  if (error instanceof OutboxError) return error;
  const code = (error as { code?: string }).code ?? '';
  const message = (error as Error).message;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return new OutboxError(
      `the outbox at ${path} is in use by another process (or another cache in this one); each cache needs its own outbox file`,
      { cause: error },
    );
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new OutboxError(
      `the outbox at ${path} is not a readable SQLite database (${message}); it was left untouched: restore it from a backup or move it aside to start empty`,
      { cause: error },
    );
  }
  return new OutboxError(`cannot open the outbox at ${path}: ${message}`, { cause: error });
}
