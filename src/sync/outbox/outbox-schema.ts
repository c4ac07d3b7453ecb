import Database from 'better-sqlite3';
import {
  migrateSqliteFile,
  type SqliteFileSchema,
  schemaProblem,
  schemaVersion,
} from '../../storage/sqlite-file/sqlite-file.js';
import { OutboxError } from '../errors.js';

/** The outbox's schema: `steps[n]` takes an outbox from schema `n` to `n + 1`. */
const OUTBOX_SCHEMA: SqliteFileSchema = {
  kind: 'outbox',
  steps: [
    `CREATE TABLE pending (
       key TEXT PRIMARY KEY NOT NULL,
       version INTEGER NOT NULL,
       json TEXT,
       expires_at INTEGER,
       queued_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     -- highest_version: the clock's high-water mark among rows that left 'pending'. Versions already
     -- flushed leave no pending row, and a restarted process whose wall clock is behind (NTP step, or
     -- more than 1024 writes/ms) must still mint versions above them.
     CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
     INSERT INTO meta (name, value) VALUES ('highest_version', 0);
     CREATE TABLE dead_letters (
       id INTEGER PRIMARY KEY,
       key TEXT NOT NULL,
       version INTEGER NOT NULL,
       json TEXT,
       expires_at INTEGER,
       error TEXT NOT NULL,
       failed_at INTEGER NOT NULL
     );`,
    // unanchored: minted before the clock had read the store's version high-water mark, and never
    // sent. Such a row is given a new version before it is sent; every other row keeps its own.
    'ALTER TABLE pending ADD COLUMN unanchored INTEGER NOT NULL DEFAULT 0;',
    // Appended items wait one row per item (an append writes O(item) bytes, never the key's log),
    // by their id, which is unique across processes. A dead letter of an item carries its id.
    // ends_log_at: this value replaced a pending delete (or a value that expired): the key's items
    // older than this version must still go in the store.
    `CREATE TABLE pending_items (
       id TEXT PRIMARY KEY NOT NULL,
       key TEXT NOT NULL,
       version INTEGER NOT NULL,
       json TEXT NOT NULL,
       expires_at INTEGER,
       queued_at INTEGER NOT NULL,
       unanchored INTEGER NOT NULL DEFAULT 0
     ) WITHOUT ROWID;
     CREATE INDEX pending_items_by_key ON pending_items (key, version);
     -- The new versions reserved, when the clock was anchored, for the writes accepted before it:
     -- a write still unanchored after a crash takes the version reserved for it.
     CREATE TABLE reserved_versions (
       old_version INTEGER PRIMARY KEY NOT NULL,
       new_version INTEGER NOT NULL
     ) WITHOUT ROWID;
     ALTER TABLE dead_letters ADD COLUMN item_id TEXT;
     ALTER TABLE pending ADD COLUMN ends_log_at INTEGER NOT NULL DEFAULT 0;`,
    // first_version: the version of the first write a pending row coalesced (kept as later writes
    // replace it): should the value the store holds have ended, the new log started there. 0 for
    // rows written before it was kept (unknown).
    'ALTER TABLE pending ADD COLUMN first_version INTEGER NOT NULL DEFAULT 0;',
  ],
  // Outboxes of the first release carried no application id.
  unstamped: { version: 1, tables: ['dead_letters', 'meta', 'pending'] },
};

export const OUTBOX_SCHEMA_VERSION = schemaVersion(OUTBOX_SCHEMA);

const OWN_FILE = 'give the outbox a file of its own (outbox.path / CACHE_DATA_DIR)';

/**
 * Refuses, before anything is written to it, a file that is not a hybrid-cache outbox: the store,
 * another application's database, or a newer outbox schema. An empty file is fine (it becomes one),
 * and so is an outbox written before outboxes carried an application id.
 */
export function assertOutboxFile(db: Database.Database, path: string): void {
  const problem = schemaProblem(db, OUTBOX_SCHEMA);
  if (!problem) return;
  switch (problem.problem) {
    case 'other-kind':
      throw new OutboxError(
        `${path} is a hybrid-cache ${problem.kind} file, not an outbox; it was left untouched: ${OWN_FILE}`,
      );
    case 'foreign':
      throw new OutboxError(
        `${path} is another application's database (${
          problem.applicationId !== 0
            ? `application_id ${problem.applicationId}`
            : `tables ${problem.tables.join(', ')}`
        }), not a hybrid-cache outbox; it was left untouched: ${OWN_FILE}`,
      );
    case 'newer':
      throw new OutboxError(
        `the outbox at ${path} has schema version ${problem.version}, newer than this version of hybrid-cache understands (${problem.supported}); upgrade hybrid-cache or use another file`,
      );
  }
}

/** Creates the schema in a new (empty) outbox file, or upgrades an earlier one in place, and stamps it. */
export function migrateOutbox(db: Database.Database): void {
  migrateSqliteFile(db, OUTBOX_SCHEMA);
}

/**
 * The file is held by another connection: if that is the store (or any other database), say so
 * rather than "in use". A read-only SQLite connection, not a plain read of the header: closing any
 * descriptor of a file drops the process's POSIX locks on it, and SQLite's VFS knows when closing
 * is safe (the holder may be the store, in this process).
 */
export function inspectHeldFile(path: string): void {
  let reader: Database.Database | undefined;
  try {
    reader = new Database(path, { readonly: true, fileMustExist: true, timeout: 0 });
    assertOutboxFile(reader, path);
  } catch (error) {
    if (error instanceof OutboxError) throw error;
  } finally {
    reader?.close();
  }
}

export function isBusy(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code ?? '';
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}
