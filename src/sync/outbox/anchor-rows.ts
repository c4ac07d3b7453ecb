import type Database from 'better-sqlite3';
import type { VersionChange } from './outbox.js';
import type { UnanchoredRows } from './space-policy.js';

// The SQL of the clock-anchoring step, apart from the tables' other statements.

/**
 * Whether a row is still unanchored: its flag, unless a later anchor that kept every version
 * recorded (in one meta row) that rows up to its version are anchored.
 */
export const STILL_UNANCHORED = `(unanchored = 1 AND version > coalesce((SELECT value FROM meta WHERE name = 'anchored_through'), 0))`;

/**
 * Prepares the anchoring step's write; it returns false when there was nothing to write. When no
 * version changes (the common restart), one meta row records that every row up to
 * `anchoredThrough` is anchored: a page or two, which a full disk still has room for (the outbox
 * keeps room to clear its backlog), so a full outbox of writes accepted while the store was down
 * still drains. When versions change, the rows are rewritten and their flags cleared in one
 * transaction, which needs log room about their size: the outbox keeps that room while they are
 * pending (see `anchorRewritePages`). Either way the reservations an outbox of 0.1 kept are dropped.
 */
export function prepareAnchor(
  db: Database.Database,
): (changes: readonly VersionChange[], anchoredThrough: number) => boolean {
  // A row's first coalesced write moves with it when it is that write (as in memory).
  const value = db.prepare(
    `UPDATE pending SET first_version = CASE WHEN first_version = version THEN ? ELSE first_version END,
       version = ?, ends_log_at = coalesce(?, ends_log_at) WHERE key = ? AND version = ?`,
  );
  const item = db.prepare('UPDATE pending_items SET version = ? WHERE id = ?');
  const clearValues = db.prepare('UPDATE pending SET unanchored = 0 WHERE unanchored = 1');
  const clearItems = db.prepare('UPDATE pending_items SET unanchored = 0 WHERE unanchored = 1');
  const recordAnchored = db.prepare(
    `INSERT INTO meta (name, value) VALUES ('anchored_through', ?)
     ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)`,
  );
  const dropReservations = db.prepare('DELETE FROM reserved_versions');
  const hasReservations = db.prepare('SELECT 1 FROM reserved_versions LIMIT 1').pluck();
  // A read first: an anchor with nothing unanchored writes nothing, so it needs no disk room.
  const hasUnanchored = db
    .prepare(
      `SELECT 1 FROM pending WHERE ${STILL_UNANCHORED} UNION ALL SELECT 1 FROM pending_items WHERE ${STILL_UNANCHORED} LIMIT 1`,
    )
    .pluck();
  const write = db.transaction((changes: readonly VersionChange[], anchoredThrough: number) => {
    for (const c of changes) {
      if (c.itemId === undefined) value.run(c.to, c.to, c.logFloor ?? null, c.key, c.from);
      else item.run(c.to, c.itemId);
    }
    if (changes.length > 0) {
      clearValues.run();
      clearItems.run();
    } else recordAnchored.run(anchoredThrough);
    if (hasReservations.get()) dropReservations.run();
  });
  return (changes, anchoredThrough) => {
    if (changes.length === 0 && !hasUnanchored.get() && !hasReservations.get()) return false;
    write(changes, anchoredThrough);
    return true;
  };
}

/** The rows still unanchored, counted at open: an earlier process may have left them. */
export function readUnanchoredRows(db: Database.Database): UnanchoredRows {
  const [count, bytes] = db
    .prepare(
      `SELECT count(*), coalesce(sum(size), 0) FROM (
         SELECT length(CAST(key AS BLOB)) + coalesce(length(CAST(json AS BLOB)), 0) AS size
           FROM pending WHERE ${STILL_UNANCHORED}
         UNION ALL
         SELECT length(CAST(key AS BLOB)) + length(id) + length(CAST(json AS BLOB))
           FROM pending_items WHERE ${STILL_UNANCHORED})`,
    )
    .raw()
    .get() as [number, number];
  return { count, bytes };
}

/**
 * The versions an outbox of 0.1 reserved, oldest first, while rows may still need them. With no
 * row pending they are clutter: dropped, best effort (a replay only reads, so a full disk at start
 * must not stop it; `couldNotDrop` hears why, and the next start tries again).
 */
export function reservationsLeft(
  db: Database.Database,
  rowsPending: boolean,
  couldNotDrop: (error: unknown) => void,
): Array<[number, number]> {
  if (!rowsPending) {
    try {
      db.exec('DELETE FROM reserved_versions');
    } catch (error) {
      couldNotDrop(error);
    }
    return [];
  }
  return db
    .prepare('SELECT old_version, new_version FROM reserved_versions ORDER BY old_version')
    .raw()
    .all() as Array<[number, number]>;
}
