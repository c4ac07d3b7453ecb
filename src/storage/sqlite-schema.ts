import type Database from 'better-sqlite3';
import { StorageConfigurationError } from './errors.js';

/** Current schema, kept in `PRAGMA user_version`. Add a migration step to raise it. */
export const SQLITE_SCHEMA_VERSION = 3;

/** Marks a file as a hybrid-cache store ('hcst'), so a foreign database is refused instead of altered. */
export const SQLITE_APPLICATION_ID = 0x68637374;

export const ENTRIES_TABLE = 'cache_entries';
export const ITEMS_TABLE = 'cache_items';

/** `MIGRATIONS[n]` takes a store from schema `n` to `n + 1`. */
const MIGRATIONS: readonly string[] = [
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
];

/**
 * Creates or upgrades the schema. Reads the version inside an immediate transaction so two
 * processes opening a fresh file at once do not both try to create it.
 */
export function migrateSchema(db: Database.Database, location: string): void {
  db.transaction(() => {
    const current = db.pragma('user_version', { simple: true }) as number;
    const applicationId = db.pragma('application_id', { simple: true }) as number;
    if (applicationId !== 0 && applicationId !== SQLITE_APPLICATION_ID) {
      throw new StorageConfigurationError(
        `${location} belongs to another application (application_id ${applicationId}); point the store at its own file`,
      );
    }
    if (current > SQLITE_SCHEMA_VERSION) {
      throw new StorageConfigurationError(
        `${location} has store schema ${current}, newer than this version of hybrid-cache understands ` +
          `(${SQLITE_SCHEMA_VERSION}); upgrade hybrid-cache or use another file`,
      );
    }
    if (current === SQLITE_SCHEMA_VERSION) return;
    if (current === 0 && hasForeignTables(db)) {
      throw new StorageConfigurationError(
        `${location} already holds tables that are not a hybrid-cache store (is it the outbox?); ` +
          'point the store at its own file',
      );
    }
    for (const step of MIGRATIONS.slice(current)) db.exec(step);
    db.pragma(`application_id = ${SQLITE_APPLICATION_ID}`);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
  }).immediate();
}

function hasForeignTables(db: Database.Database): boolean {
  const count = db
    .prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .pluck()
    .get() as number;
  return count > 0;
}
