/**
 * `hybrid-cache/postgres`: the store over a direct PostgreSQL connection (node-postgres), and the
 * migrator that prepares a database for it. A separate entry point so that the package root never
 * loads `pg`. Its failures are the root's storage errors (`TransientStorageError`,
 * `PermanentStorageError`, `StorageConfigurationError`).
 */

// First, so an unsupported Node.js is refused before pg or the SQLite native module loads.
import '../require-supported-node.js';

export {
  type MigrateOptions,
  type MigrateResult,
  migrate,
} from '../storage/postgres/migrate.js';
export type { PoolSource } from '../storage/postgres/pool.js';
export {
  PostgresStorage,
  type PostgresStorageCommonOptions,
  type PostgresStorageOptions,
  type PostgresTable,
} from '../storage/postgres/postgres-storage.js';
