import type Database from 'better-sqlite3';
import type { LogItem } from '../contract/types.js';
import { SqliteFeed } from './sqlite-feed.js';
import { ENTRIES_TABLE, ITEMS_TABLE } from './sqlite-schema.js';

export interface EntryRow {
  key: string;
  version: number;
  json: string | null;
  expires_at: number | null;
}

/** An open store file: its connection, change feed and prepared statements. */
export interface Connection {
  db: Database.Database;
  feed: SqliteFeed;
  upsert: Database.Statement<[string, number, string | null, number | null, number]>;
  selectHighWaterMark: Database.Statement<[], number>;
  deleteExpired: Database.Statement<[number]>;
  deleteOldTombstones: Database.Statement<[number]>;
  /** Reads by key count, prepared on first use (see `#selectStatement`). */
  selectByKeyCount: Map<number, Database.Statement<unknown[], EntryRow>>;
  selectEntry: Database.Statement<[string], EntryRow & { log_floor: number }>;
  selectItems: Database.Statement<[string], LogItem>;
  insertItem: Database.Statement<[string, number, string, string]>;
  deleteItemsAtOrBelow: Database.Statement<[string, number]>;
  raiseExpiry: Database.Statement<[number | null, number | null, string, number, number]>;
  deleteOrphanItems: Database.Statement<[number]>;
}

/** Prepares the store's statements on `db`, whose schema is current. */
export function prepareConnection(db: Database.Database): Connection {
  const upsert = db.prepare(
    `INSERT INTO ${ENTRIES_TABLE} (key, version, json, expires_at, log_floor)
     VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE
       SET version = excluded.version, json = excluded.json, expires_at = excluded.expires_at,
           log_floor = max(${ENTRIES_TABLE}.log_floor, excluded.log_floor)
       WHERE excluded.version > ${ENTRIES_TABLE}.version`,
  );
  const selectHighWaterMark = db
    .prepare<[], number>(
      `SELECT max(coalesce((SELECT max(version) FROM ${ENTRIES_TABLE}), 0),
                  coalesce((SELECT max(version) FROM ${ITEMS_TABLE}), 0))`,
    )
    .pluck();
  const selectEntry = db.prepare<[string], EntryRow & { log_floor: number }>(
    `SELECT key, version, json, expires_at, log_floor FROM ${ENTRIES_TABLE} WHERE key = ?`,
  );
  const selectItems = db.prepare<[string], LogItem>(
    `SELECT id, version, json FROM ${ITEMS_TABLE} WHERE key = ? ORDER BY version, id`,
  );
  const insertItem = db.prepare(
    `INSERT INTO ${ITEMS_TABLE} (key, version, id, json) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  );
  const deleteItemsAtOrBelow = db.prepare(`DELETE FROM ${ITEMS_TABLE} WHERE key = ? AND version <= ?`);
  // An append refreshes the expiry of a value live when it was appended (never shortens it).
  const raiseExpiry = db.prepare(
    `UPDATE ${ENTRIES_TABLE}
       SET expires_at = CASE WHEN ? IS NULL OR expires_at IS NULL THEN NULL ELSE max(expires_at, ?) END
     WHERE key = ? AND json IS NOT NULL AND version < ? AND (expires_at IS NULL OR expires_at > ?)`,
  );
  const deleteOrphanItems = db.prepare(
    `DELETE FROM ${ITEMS_TABLE} WHERE NOT EXISTS (
       SELECT 1 FROM ${ENTRIES_TABLE} e WHERE e.key = ${ITEMS_TABLE}.key AND e.json IS NOT NULL
         AND (e.expires_at IS NULL OR e.expires_at > ?))`,
  );
  const deleteExpired = db.prepare(
    `DELETE FROM ${ENTRIES_TABLE} WHERE json IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= ?`,
  );
  const deleteOldTombstones = db.prepare(`DELETE FROM ${ENTRIES_TABLE} WHERE json IS NULL AND version < ?`);
  return {
    db,
    feed: new SqliteFeed(db),
    selectByKeyCount: new Map(),
    upsert,
    selectHighWaterMark,
    deleteExpired,
    deleteOldTombstones,
    selectEntry,
    selectItems,
    insertItem,
    deleteItemsAtOrBelow,
    raiseExpiry,
    deleteOrphanItems,
  };
}

/** The read of `keyCount` keys: statements for power-of-two key counts, so at most ten are ever prepared. */
export function selectByKeys(conn: Connection, keyCount: number): Database.Statement<unknown[], EntryRow> {
  const size = paddedSize(keyCount);
  let statement = conn.selectByKeyCount.get(size);
  if (!statement) {
    statement = conn.db.prepare<unknown[], EntryRow>(
      `SELECT key, version, json, expires_at FROM ${ENTRIES_TABLE}
       WHERE (json IS NULL OR expires_at IS NULL OR expires_at > ?)
         AND key IN (${Array(size).fill('?').join(', ')})`,
    );
    conn.selectByKeyCount.set(size, statement);
  }
  return statement;
}

function paddedSize(count: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(count, 1)));
}

/** Fills a chunk up to its statement's size by repeating the last key (harmless inside `IN`). */
export function padded(chunk: string[]): string[] {
  const size = paddedSize(chunk.length);
  return chunk.concat(Array(size - chunk.length).fill(chunk[chunk.length - 1]));
}
