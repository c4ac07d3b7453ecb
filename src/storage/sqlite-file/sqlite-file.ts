import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { isNativeModuleFailure, nativeModuleMessage } from './sqlite-errors.js';

/**
 * What the store and the outbox share about their SQLite files: opening one (its folder created,
 * a native module that cannot load told apart from a bad file), recognising it by its
 * `application_id`, and bringing it to the current schema with numbered steps in `user_version`.
 * Each caller turns a `SchemaProblem` into its own error, naming its own settings.
 */

/** Every hybrid-cache SQLite file type, by its `application_id`. */
export const APPLICATION_IDS = {
  /** 'hcst' */
  store: 0x6863_7374,
  /** 'hcob' */
  outbox: 0x6863_6f62,
} as const;

export type FileKind = keyof typeof APPLICATION_IDS;

export interface SqliteFileSchema {
  kind: FileKind;
  /** `steps[n]` takes a file from schema `n` to `n + 1`; the current schema is `steps.length`. */
  steps: readonly string[];
  /**
   * A file written before files were stamped: at this schema, with exactly these tables (sorted),
   * it is ours; any other unstamped file with tables is not.
   */
  unstamped?: { version: number; tables: readonly string[] };
}

export type SchemaProblem =
  | { problem: 'other-kind'; kind: FileKind }
  | { problem: 'foreign'; applicationId: number; tables: string[] }
  | { problem: 'newer'; version: number; supported: number };

/** Opens (creating its folder) a database file; the callback words the failure for its caller. */
export function openSqliteFile(
  path: string,
  options: Database.Options,
  fail: (reason: string, cause: unknown, nativeModule: boolean) => Error,
): Database.Database {
  try {
    if (path !== ':memory:' && path !== '') mkdirSync(dirname(path), { recursive: true });
    return new Database(path, options);
  } catch (error) {
    if (isNativeModuleFailure(error)) throw fail(nativeModuleMessage(error), error, true);
    throw fail(error instanceof Error ? error.message : String(error), error, false);
  }
}

export function schemaVersion(schema: SqliteFileSchema): number {
  return schema.steps.length;
}

/** Why this file must not be touched as `schema.kind`, or undefined when it can be migrated. */
export function schemaProblem(db: Database.Database, schema: SqliteFileSchema): SchemaProblem | undefined {
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  const own = APPLICATION_IDS[schema.kind];
  const otherKind = (Object.keys(APPLICATION_IDS) as FileKind[]).find(
    (kind) => kind !== schema.kind && APPLICATION_IDS[kind] === applicationId,
  );
  if (otherKind) return { problem: 'other-kind', kind: otherKind };
  if (applicationId !== 0 && applicationId !== own)
    return { problem: 'foreign', applicationId, tables: userTables(db) };
  if (applicationId === 0) {
    const tables = userTables(db);
    const legacy =
      schema.unstamped !== undefined &&
      version === schema.unstamped.version &&
      tables.join() === schema.unstamped.tables.join();
    if (tables.length > 0 && !legacy) return { problem: 'foreign', applicationId, tables };
  }
  if (version > schemaVersion(schema)) return { problem: 'newer', version, supported: schemaVersion(schema) };
  return undefined;
}

/** Runs the steps from the file's schema to the current one and stamps it; call inside a transaction. */
export function migrateSqliteFile(db: Database.Database, schema: SqliteFileSchema): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  for (const step of schema.steps.slice(version)) db.exec(step);
  if (version !== schemaVersion(schema)) db.pragma(`user_version = ${schemaVersion(schema)}`);
  if (db.pragma('application_id', { simple: true }) !== APPLICATION_IDS[schema.kind]) {
    db.pragma(`application_id = ${APPLICATION_IDS[schema.kind]}`);
  }
}

function userTables(db: Database.Database): string[] {
  return db
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    .pluck()
    .all() as string[];
}
