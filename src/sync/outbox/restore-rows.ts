import type Database from 'better-sqlite3';
import type { DeadLetter } from '../types.js';
import type { OutboxRows } from './outbox.js';
import type { OutboxTables } from './outbox-tables.js';

// The SQL that writes a new outbox file with the pending writes of a lost one, apart from the
// tables' other statements.

/**
 * Prepares the write of a healed outbox: the pending writes rebuilt from memory (each value with
 * its log floor and the first write it coalesced as memory holds them: an upsert here could not work it out, the rows it would compare
 * with are gone), the writes that were on their way in (recorded as `append` records them), the
 * dead letters read from the lost file, and the clock's high-water mark, in one transaction. A file
 * put at the path may be another outbox with rows of its own: they are kept, and a row of it newer
 * than memory's for a key wins, as it would in the store.
 */
export function prepareRestore(
  db: Database.Database,
  tables: OutboxTables,
): (rows: OutboxRows, letters: readonly DeadLetter[]) => void {
  const value = db.prepare(
    `INSERT INTO pending (key, version, json, expires_at, queued_at, unanchored, ends_log_at, first_version)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET version = excluded.version, json = excluded.json,
       expires_at = excluded.expires_at, unanchored = excluded.unanchored, ends_log_at = excluded.ends_log_at,
       first_version = excluded.first_version
     WHERE excluded.version > pending.version`,
  );
  const dropItemsBefore = db.prepare('DELETE FROM pending_items WHERE key = ? AND version < ?');
  const letter = db.prepare(
    `INSERT INTO dead_letters (key, version, json, expires_at, item_id, error, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const raiseHighest = db.prepare(`UPDATE meta SET value = max(value, ?) WHERE name = 'highest_version'`);
  return db.transaction((rows: OutboxRows, letters: readonly DeadLetter[]) => {
    for (const w of rows.values) {
      const floor = w.json === null ? 0 : (w.logFloor ?? 0);
      const first = w.firstVersion ?? w.version;
      value.run(w.key, w.version, w.json, w.expiresAt, w.queuedAt, w.unanchored ? 1 : 0, floor, first);
      if (w.json === null) dropItemsBefore.run(w.key, w.version);
    }
    if (rows.items.length > 0) tables.commit(rows.items);
    if (rows.appended.length > 0) tables.commit(rows.appended);
    for (const l of letters) {
      letter.run(l.key, l.version, l.json, l.expiresAt, l.itemId ?? null, l.error, l.failedAt);
    }
    raiseHighest.run(rows.highestVersion);
  });
}
