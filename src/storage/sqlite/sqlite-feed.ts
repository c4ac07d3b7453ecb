import type Database from 'better-sqlite3';
import {
  cursorIsServable,
  type FeedPosition,
  formatCursor,
  headPage,
  parseCursor,
} from '../contract/feed.js';
import type { FeedChange, FeedPage } from '../contract/types.js';
import { CHANGES_TABLE, META_TABLE } from './sqlite-schema.js';

interface ChangeRow {
  id: number;
  key: string;
  version: number;
  item_id: string | null;
  origin: string | null;
}

/** What the last full read saw, and the connection's `data_version` before it looked. */
interface Snapshot {
  dataVersion: number;
  epoch: string;
  head: FeedPosition;
  prunedThrough: number;
}

/**
 * A SQLite store's change feed: the `cache_changes` log, written in the transaction of the write
 * it records, so a change is visible exactly when its write is. SQLite has one writer at a time
 * and ids are assigned inside the write transaction, so id order is commit order and a reader
 * never sees a later id before an earlier one commits: reading `id > cursor` skips nothing.
 *
 * Followers poll the head many times a second, mostly finding nothing new. `PRAGMA data_version`
 * changes only when another connection commits, and this connection's own writes drop the
 * snapshot, so while neither happened a poll at the head is answered without reading the log.
 */
export class SqliteFeed {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement<[string, number, string | null, number, string | null]>;
  readonly #selectMeta: Database.Statement<[], { name: string; value: string | number }>;
  readonly #selectHead: Database.Statement<[], FeedPosition>;
  readonly #selectVersion: Database.Statement<[number], number>;
  readonly #selectAfter: Database.Statement<[number, number], ChangeRow>;
  readonly #selectPruneBound: Database.Statement<[number], number | null>;
  readonly #deleteThrough: Database.Statement<[number]>;
  readonly #raisePruned: Database.Statement<[number]>;
  readonly #dataVersion: Database.Statement<[], number>;
  #snapshot: Snapshot | undefined;

  /** Call once the schema is current. */
  constructor(db: Database.Database) {
    this.#db = db;
    this.#insert = db.prepare(
      `INSERT INTO ${CHANGES_TABLE} (key, version, item_id, changed_at, origin) VALUES (?, ?, ?, ?, ?)`,
    );
    this.#selectMeta = db.prepare(
      `SELECT name, value FROM ${META_TABLE} WHERE name IN ('epoch', 'feed_pruned_through')`,
    );
    this.#selectHead = db.prepare<[], FeedPosition>(
      `SELECT id, version FROM ${CHANGES_TABLE} ORDER BY id DESC LIMIT 1`,
    );
    this.#selectVersion = db
      .prepare<[number], number>(`SELECT version FROM ${CHANGES_TABLE} WHERE id = ?`)
      .pluck();
    this.#selectAfter = db.prepare<[number, number], ChangeRow>(
      `SELECT id, key, version, item_id, origin FROM ${CHANGES_TABLE} WHERE id > ? ORDER BY id LIMIT ?`,
    );
    // The newest change is always kept, so the head stays a real row whose version is known.
    this.#selectPruneBound = db
      .prepare<[number], number | null>(
        `SELECT max(id) FROM ${CHANGES_TABLE}
         WHERE changed_at <= ? AND id < (SELECT max(id) FROM ${CHANGES_TABLE})`,
      )
      .pluck();
    this.#deleteThrough = db.prepare(`DELETE FROM ${CHANGES_TABLE} WHERE id <= ?`);
    // Prepared once: `db.pragma()` prepares on every call, and the head is polled many times a second.
    this.#dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.#raisePruned = db.prepare(
      `UPDATE ${META_TABLE} SET value = max(value, ?) WHERE name = 'feed_pruned_through'`,
    );
  }

  /**
   * Records one change, with the origin of the cache that wrote it (null: none given); call inside
   * the transaction of the write it records.
   */
  record(origin: string | null, key: string, version: number, itemId: string | null = null): void {
    this.#insert.run(key, version, itemId, Date.now(), origin);
    // This connection's commits do not move its own data_version.
    this.#snapshot = undefined;
  }

  /**
   * Removes changes recorded at or before `cutoff` (epoch ms), except the newest, and remembers
   * the boundary so that a cursor before it answers `reset`. A prefix of the log is removed (up
   * to the newest old-enough change), so everything after the boundary is still held even if
   * the clock stepped back between two changes. Call inside a transaction.
   */
  prune(cutoff: number): void {
    const bound = this.#selectPruneBound.get(cutoff);
    if (bound === null || bound === undefined) return;
    this.#deleteThrough.run(bound);
    this.#raisePruned.run(bound);
    this.#snapshot = undefined;
  }

  /**
   * `Storage.changes`, with `limit` already checked; the changes written with `skipOrigin` are
   * left out of the page, which still ends after them.
   */
  read(after: string | null, limit: number, skipOrigin: string | null = null): FeedPage {
    const dataVersion = this.#dataVersion.get() as number;
    const known = this.#snapshot;
    if (
      known?.dataVersion === dataVersion &&
      (after === null || after === formatCursor(known.epoch, known.head))
    ) {
      return headPage(known.epoch, known.head, false);
    }
    // One read transaction, so the bounds and the rows come from the same snapshot.
    return this.#db.transaction(() => {
      const snapshot = this.#readBounds(dataVersion);
      const { epoch, head, prunedThrough } = snapshot;
      this.#snapshot = snapshot;
      if (after === null) return headPage(epoch, head, false);
      const position = parseCursor(after, epoch);
      const versionOf = (id: number) => this.#selectVersion.get(id);
      if (!position || !cursorIsServable(position, { head, prunedThrough, versionOf })) {
        return headPage(epoch, head, true);
      }
      const rows = this.#selectAfter.all(position.id, limit + 1);
      const more = rows.length > limit;
      if (more) rows.length = limit;
      const last = rows.at(-1);
      return {
        epoch,
        cursor: formatCursor(epoch, last ? { id: last.id, version: last.version } : position),
        changes: (skipOrigin === null ? rows : rows.filter((row) => row.origin !== skipOrigin)).map(toChange),
        reset: false,
        more,
      };
    })();
  }

  #readBounds(dataVersion: number): Snapshot {
    let epoch = '';
    let prunedThrough = 0;
    for (const { name, value } of this.#selectMeta.all()) {
      if (name === 'epoch') epoch = String(value);
      else prunedThrough = Number(value);
    }
    const head = this.#selectHead.get() ?? { id: 0, version: 0 };
    return { dataVersion, epoch, head: { id: head.id, version: head.version }, prunedThrough };
  }
}

function toChange(row: ChangeRow): FeedChange {
  return row.item_id === null
    ? { key: row.key, version: row.version }
    : { key: row.key, version: row.version, itemId: row.item_id };
}
