import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import { StorageConfigurationError } from '../contract/errors.js';
import {
  APPLICATION_IDS,
  migrateSqliteFile,
  type SchemaProblem,
  type SqliteFileSchema,
  schemaProblem,
  schemaVersion,
} from '../sqlite-file/sqlite-file.js';

export const ENTRIES_TABLE = 'cache_entries';
export const ITEMS_TABLE = 'cache_items';
export const CHANGES_TABLE = 'cache_changes';
export const META_TABLE = 'cache_meta';

/** The store's schema: `steps[n]` takes a store from schema `n` to `n + 1`. */
export const STORE_SCHEMA: SqliteFileSchema = {
  kind: 'store',
  steps: [
    `CREATE TABLE ${ENTRIES_TABLE} (
       key TEXT PRIMARY KEY NOT NULL,
       version INTEGER NOT NULL CHECK (typeof(version) = 'integer' AND version >= 0),
       json TEXT CHECK (json IS NULL OR typeof(json) = 'text'),
       expires_at INTEGER CHECK (expires_at IS NULL OR typeof(expires_at) = 'integer')
     );
     CREATE INDEX ${ENTRIES_TABLE}_expiry ON ${ENTRIES_TABLE} (expires_at)
       WHERE json IS NOT NULL AND expires_at IS NOT NULL;
     CREATE INDEX ${ENTRIES_TABLE}_tombstones ON ${ENTRIES_TABLE} (version) WHERE json IS NULL;`,
    // The version high-water mark is max(version): one index lookup instead of a table scan.
    `CREATE INDEX ${ENTRIES_TABLE}_version ON ${ENTRIES_TABLE} (version);`,
    // Append-only logs: one row per item, clustered in read order; each id stored once.
    `CREATE TABLE ${ITEMS_TABLE} (
       key TEXT NOT NULL,
       version INTEGER NOT NULL CHECK (typeof(version) = 'integer'),
       id TEXT NOT NULL,
       json TEXT NOT NULL CHECK (typeof(json) = 'text'),
       PRIMARY KEY (key, version, id)
     ) WITHOUT ROWID;
     CREATE UNIQUE INDEX ${ITEMS_TABLE}_id ON ${ITEMS_TABLE} (id);
     -- log_floor: the newest delete of the key; items at or below it are refused, even once a later
     -- value replaced the tombstone (a late append from before the delete never comes back).
     ALTER TABLE ${ENTRIES_TABLE} ADD COLUMN log_floor INTEGER NOT NULL DEFAULT 0;
     UPDATE ${ENTRIES_TABLE} SET log_floor = version WHERE json IS NULL;`,
    // The change feed (see sqlite-feed.ts): one row per committed change. AUTOINCREMENT so that
    // the id of a pruned newest row is never handed out again; the single writer makes id order
    // commit order. The meta table holds the file's epoch (written by `migrateSchema`) and the
    // pruned boundary.
    `CREATE TABLE ${CHANGES_TABLE} (
       id INTEGER PRIMARY KEY AUTOINCREMENT,
       key TEXT NOT NULL,
       version INTEGER NOT NULL,
       item_id TEXT,
       changed_at INTEGER NOT NULL
     );
     CREATE INDEX ${CHANGES_TABLE}_changed_at ON ${CHANGES_TABLE} (changed_at);
     CREATE TABLE ${META_TABLE} (name TEXT PRIMARY KEY NOT NULL, value NOT NULL) WITHOUT ROWID;
     INSERT INTO ${META_TABLE} (name, value) VALUES ('feed_pruned_through', 0);`,
    // The origin of each change: the writing cache's id (ApplyOptions.origin), so that a reader
    // can leave its own changes out (FeedReadOptions.skipOrigin). Null for changes recorded
    // before, or without an origin: every reader gets those.
    `ALTER TABLE ${CHANGES_TABLE} ADD COLUMN origin TEXT;`,
  ],
};

/** Current schema, kept in `PRAGMA user_version`. Add a step to `STORE_SCHEMA` to raise it. */
export const SQLITE_SCHEMA_VERSION = schemaVersion(STORE_SCHEMA);

/** Marks a file as a hybrid-cache store, so a foreign database is refused instead of altered. */
export const SQLITE_APPLICATION_ID = APPLICATION_IDS.store;

/**
 * Creates or upgrades the schema. Reads the version inside an immediate transaction so two
 * processes opening a fresh file at once do not both try to create it.
 */
export function migrateSchema(db: Database.Database, location: string): void {
  db.transaction(() => {
    const problem = schemaProblem(db, STORE_SCHEMA);
    if (problem) throw new StorageConfigurationError(describeProblem(problem, location));
    migrateSqliteFile(db, STORE_SCHEMA);
    // The epoch is born with the file's feed: a file created or recreated at this path gets a new
    // one, a copy of the file (a restored backup) keeps it.
    db.prepare(`INSERT OR IGNORE INTO ${META_TABLE} (name, value) VALUES ('epoch', ?)`).run(randomUUID());
  }).immediate();
}

function describeProblem(problem: SchemaProblem, location: string): string {
  switch (problem.problem) {
    case 'other-kind':
      return `${location} is a hybrid-cache ${problem.kind} file, not a store; point the store at its own file`;
    case 'foreign':
      return problem.applicationId !== 0
        ? `${location} belongs to another application (application_id ${problem.applicationId}); point the store at its own file`
        : `${location} already holds tables that are not a hybrid-cache store (${problem.tables.join(', ')}); point the store at its own file`;
    case 'newer':
      return (
        `${location} has store schema ${problem.version}, newer than this version of hybrid-cache understands ` +
        `(${problem.supported}); upgrade hybrid-cache or use another file`
      );
  }
}
