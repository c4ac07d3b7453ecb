import Database from 'better-sqlite3';
import { SQLITE_APPLICATION_ID as STORE_APPLICATION_ID } from '../storage/sqlite-schema.js';
import { OutboxError } from './errors.js';

export const OUTBOX_SCHEMA_VERSION = 3;
/** Outboxes written before appended items (no `pending_items` table, no `dead_letters.item_id`). */
const VALUES_ONLY_SCHEMA_VERSION = 2;
/** Outboxes written before files carried an application id (and before the `unanchored` column). */
const LEGACY_SCHEMA_VERSION = 1;

/** Marks a file as a hybrid-cache outbox ('hcob'), so a foreign database is refused instead of altered. */
export const OUTBOX_APPLICATION_ID = 0x6863_6f62;

const OUTBOX_TABLES = ['dead_letters', 'meta', 'pending'];

/**
 * Refuses, before anything is written to it, a file that is not a hybrid-cache outbox: the store,
 * another application's database, or a newer outbox schema. An empty file is fine (it becomes one),
 * and so is an outbox written before outboxes carried an application id.
 */
export function assertOutboxFile(db: Database.Database, path: string): void {
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  assertOwnApplicationId(applicationId, path);
  const tables = userTables(db);
  if (applicationId === 0 && tables.length > 0 && !isLegacyOutbox(tables, version)) {
    throw new OutboxError(
      `${path} is another application's database (tables ${tables.join(', ')}), not a hybrid-cache outbox; ` +
        `it was left untouched: ${OWN_FILE}`,
    );
  }
  if (version > OUTBOX_SCHEMA_VERSION) {
    throw new OutboxError(
      `the outbox at ${path} has schema version ${version}, newer than this version of hybrid-cache understands (${OUTBOX_SCHEMA_VERSION}); upgrade hybrid-cache or use another file`,
    );
  }
}

const OWN_FILE = 'give the outbox a file of its own (outbox.path / CACHE_DATA_DIR)';

/** Refuses the store's file and any file stamped by another application (0 is unstamped). */
function assertOwnApplicationId(applicationId: number, path: string): void {
  if (applicationId === STORE_APPLICATION_ID) {
    throw new OutboxError(
      `${path} is a hybrid-cache store file, not an outbox; it was left untouched: ${OWN_FILE}`,
    );
  }
  if (applicationId !== 0 && applicationId !== OUTBOX_APPLICATION_ID) {
    throw new OutboxError(
      `${path} is another application's database (application_id ${applicationId}), not a hybrid-cache outbox; ` +
        `it was left untouched: ${OWN_FILE}`,
    );
  }
}

function isLegacyOutbox(tables: string[], version: number): boolean {
  return version === LEGACY_SCHEMA_VERSION && tables.join() === OUTBOX_TABLES.join();
}

function userTables(db: Database.Database): string[] {
  return db
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    .pluck()
    .all() as string[];
}

/**
 * Creates the schema in a new (empty) outbox file and stamps it; upgrades an outbox of an earlier
 * schema in place, keeping its rows.
 */
export function migrateOutbox(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === LEGACY_SCHEMA_VERSION) {
    // unanchored: minted before the clock had read the store's version high-water mark, and never
    // sent. Such a row is given a new version before it is sent; every other row keeps its own.
    db.exec(`
      ALTER TABLE pending ADD COLUMN unanchored INTEGER NOT NULL DEFAULT 0;
      PRAGMA user_version = ${VALUES_ONLY_SCHEMA_VERSION};
    `);
  }
  if (version === 0) createValuesOnlySchema(db);
  if (version <= VALUES_ONLY_SCHEMA_VERSION) addItemTables(db);
  if (db.pragma('application_id', { simple: true }) === 0) {
    db.pragma(`application_id = ${OUTBOX_APPLICATION_ID}`);
  }
}

/**
 * Appended items wait one row per item (an append writes O(item) bytes, never the key's log), by
 * their id, which is unique across processes. A dead letter of an item carries its id.
 */
function addItemTables(db: Database.Database): void {
  db.exec(`
    CREATE TABLE pending_items (
      id TEXT PRIMARY KEY NOT NULL,
      key TEXT NOT NULL,
      version INTEGER NOT NULL,
      json TEXT NOT NULL,
      expires_at INTEGER,
      queued_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX pending_items_by_key ON pending_items (key, version);
    ALTER TABLE dead_letters ADD COLUMN item_id TEXT;
    -- ends_log_at: this value replaced a pending delete (or a value that expired): the key's items
    -- older than this version must still go in the store.
    ALTER TABLE pending ADD COLUMN ends_log_at INTEGER NOT NULL DEFAULT 0;
    PRAGMA user_version = ${OUTBOX_SCHEMA_VERSION};
  `);
}

/** The schema of release 2 (values only), which `addItemTables` then upgrades like any outbox of that release. */
function createValuesOnlySchema(db: Database.Database): void {
  db.exec(`
    CREATE TABLE pending (
      key TEXT PRIMARY KEY NOT NULL,
      version INTEGER NOT NULL,
      json TEXT,
      expires_at INTEGER,
      queued_at INTEGER NOT NULL,
      unanchored INTEGER NOT NULL DEFAULT 0
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
    );
    PRAGMA application_id = ${OUTBOX_APPLICATION_ID};
    PRAGMA user_version = ${VALUES_ONLY_SCHEMA_VERSION};
  `);
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
