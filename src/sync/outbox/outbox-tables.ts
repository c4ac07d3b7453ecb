import type Database from 'better-sqlite3';
import type { DeadLetter } from '../types.js';
import { STILL_UNANCHORED } from './anchor-rows.js';
import { isPendingItem, type PendingItem, type PendingWrite } from './outbox.js';

/** A value row the store acknowledged: deleted only while its version still matches. */
export interface AcknowledgedValue {
  key: string;
  version: number;
}
/** An appended item the store acknowledged, by id, with its version. */
export type AcknowledgedItem = readonly [id: string, version: number];

type ValueRow = [
  key: string,
  version: number,
  json: string | null,
  expiresAt: number | null,
  queuedAt: number,
  unanchored: number,
  logFloor: number,
  firstVersion: number,
];
type ItemRow = [
  key: string,
  id: string,
  version: number,
  json: string,
  expiresAt: number | null,
  queuedAt: number,
  unanchored: number,
];
type LetterRow = [string, number, string | null, number | null, string | null, string, number];
type DamagedRow = [string, number, string, number | null, string | null];

const DAMAGED_JSON = 'its JSON was damaged in the outbox (not valid JSON); it was not sent to the store';

/**
 * The outbox's SQL over its tables: pending values, pending items, dead letters and the high-water
 * mark. Synchronous and policy-free: callers decide when to run each statement and what its failure
 * means. Statements are prepared once, at open.
 */
export class OutboxTables {
  readonly #db: Database.Database;
  readonly #upsertValue: Database.Statement;
  readonly #insertItem: Database.Statement;
  readonly #raisePendingExpiry: Database.Statement;
  readonly #dropItemsBefore: Database.Statement;
  readonly #deleteValue: Database.Statement;
  readonly #deleteItem: Database.Statement;
  readonly #insertLetter: Database.Statement;
  readonly #deleteLetter: Database.Statement;
  readonly #raiseHighest: Database.Statement;
  readonly #hasPending: Database.Statement;
  readonly #writeGroup: (writes: ReadonlyArray<PendingWrite | PendingItem>) => void;
  readonly #deleteAcknowledged: (
    values: readonly AcknowledgedValue[],
    items: readonly AcknowledgedItem[],
  ) => void;

  constructor(db: Database.Database) {
    this.#db = db;
    // A value replacing a pending delete (or an expired value) records where the key's items end;
    // one replacing a pending value that did keeps where it said; a new row takes the caller's.
    // first_version: a new row's own version, kept while later writes replace the row.
    this.#upsertValue = db.prepare(
      `INSERT INTO pending (key, version, json, expires_at, queued_at, unanchored, ends_log_at, first_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET version = excluded.version, json = excluded.json,
         expires_at = excluded.expires_at, unanchored = excluded.unanchored,
         ends_log_at = CASE WHEN excluded.json IS NULL THEN 0
                            WHEN pending.json IS NULL
                              OR pending.expires_at <= excluded.queued_at
                              THEN excluded.version - 1
                            ELSE pending.ends_log_at END
       WHERE excluded.version > pending.version`,
    );
    this.#insertItem = db.prepare(
      `INSERT INTO pending_items (id, key, version, json, expires_at, queued_at, unanchored) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO NOTHING`,
    );
    // An append refreshes the pending value's expiry as memory does (`MemoryTier.appendItem`): only
    // a value older than the item and live when it was appended, never shortened. A value replacing
    // this one judges it by that expiry, here as in memory.
    this.#raisePendingExpiry = db.prepare(
      `UPDATE pending
         SET expires_at = CASE WHEN ? IS NULL OR expires_at IS NULL THEN NULL ELSE max(expires_at, ?) END
       WHERE key = ? AND json IS NOT NULL AND version < ? AND (expires_at IS NULL OR expires_at > ?)`,
    );
    this.#dropItemsBefore = db.prepare('DELETE FROM pending_items WHERE key = ? AND version < ?');
    this.#deleteValue = db.prepare('DELETE FROM pending WHERE key = ? AND version = ?');
    this.#deleteItem = db.prepare('DELETE FROM pending_items WHERE id = ?');
    this.#insertLetter = db.prepare(
      `INSERT INTO dead_letters (key, version, json, expires_at, item_id, error, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#deleteLetter = db.prepare(
      'DELETE FROM dead_letters WHERE key = ? AND version = ? AND item_id IS ?',
    );
    // The high-water mark is raised when a row leaves `pending` (until then the row itself holds it),
    // so a commit writes one page fewer.
    this.#raiseHighest = db.prepare(`UPDATE meta SET value = max(value, ?) WHERE name = 'highest_version'`);
    this.#hasPending = db
      .prepare('SELECT 1 FROM pending UNION ALL SELECT 1 FROM pending_items LIMIT 1')
      .pluck();
    this.#writeGroup = db.transaction((writes: ReadonlyArray<PendingWrite | PendingItem>) => {
      for (const w of writes) this.#write(w);
    });
    this.#deleteAcknowledged = db.transaction(
      (values: readonly AcknowledgedValue[], items: readonly AcknowledgedItem[]) => {
        let highest = 0;
        for (const v of values) {
          this.#deleteValue.run(v.key, v.version);
          if (v.version > highest) highest = v.version;
        }
        for (const [id, version] of items) {
          this.#deleteItem.run(id);
          if (version > highest) highest = version;
        }
        this.#raiseHighest.run(highest);
      },
    );
  }

  /** Records the writes in one transaction; a lone value (one statement) is its own transaction. */
  commit(writes: ReadonlyArray<PendingWrite | PendingItem>): void {
    const only = writes.length === 1 ? (writes[0] as PendingWrite | PendingItem) : undefined;
    if (only && (isPendingItem(only) || only.json !== null)) this.#write(only);
    else this.#writeGroup(writes);
  }

  /** Deletes acknowledged rows (a value only at the version acknowledged) and raises the high-water mark. */
  deleteAcknowledged(values: readonly AcknowledgedValue[], items: readonly AcknowledgedItem[]): void {
    this.#deleteAcknowledged(values, items);
  }

  /** Whether any value or item is pending. */
  hasPending(): boolean {
    return this.#hasPending.get() !== undefined;
  }

  /** A one-page write transaction that changes nothing: tells whether the file takes writes. */
  touch(): void {
    this.#db.transaction(() => this.#raiseHighest.run(0))();
  }

  pendingValues(): PendingWrite[] {
    const rows = this.#db
      .prepare(
        `SELECT key, version, json, expires_at, queued_at, ${STILL_UNANCHORED}, ends_log_at, first_version
         FROM pending ORDER BY queued_at`,
      )
      .raw()
      .all() as ValueRow[];
    return rows.map(([key, version, json, expiresAt, queuedAt, unanchored, logFloor, firstVersion]) => ({
      key,
      version,
      json,
      expiresAt,
      queuedAt,
      ...(unanchored ? { unanchored: true } : {}),
      ...(logFloor ? { logFloor } : {}),
      ...(firstVersion > 0 && firstVersion < version ? { firstVersion } : {}),
    }));
  }

  pendingItems(): PendingItem[] {
    const rows = this.#db
      .prepare(
        `SELECT key, id, version, json, expires_at, queued_at, ${STILL_UNANCHORED} FROM pending_items ORDER BY version, id`,
      )
      .raw()
      .all() as ItemRow[];
    return rows.map(([key, id, version, json, expiresAt, queuedAt, unanchored]) => ({
      key,
      item: { id, version, json },
      expiresAt,
      queuedAt,
      ...(unanchored ? { unanchored: true } : {}),
    }));
  }

  /** The highest version held: the recorded mark, or a pending row's. */
  highestVersion(): number {
    return this.#db
      .prepare(
        `SELECT max((SELECT value FROM meta WHERE name = 'highest_version'),
                    coalesce((SELECT value FROM meta WHERE name = 'anchored_through'), 0),
                    coalesce((SELECT max(version) FROM pending), 0),
                    coalesce((SELECT max(version) FROM pending_items), 0))`,
      )
      .pluck()
      .get() as number;
  }

  /** Moves pending rows whose JSON is not valid to the dead letters, in one transaction; returns them. */
  quarantineDamaged(failedAt: number): DeadLetter[] {
    return this.#db.transaction(() => {
      const rows = this.#db
        .prepare(
          `SELECT key, version, json, expires_at, NULL FROM pending WHERE json IS NOT NULL AND NOT json_valid(json)
           UNION ALL
           SELECT key, version, json, expires_at, id FROM pending_items WHERE NOT json_valid(json)`,
        )
        .raw()
        .all() as DamagedRow[];
      const letters: DeadLetter[] = rows.map(([key, version, json, expiresAt, itemId]) => ({
        key,
        version,
        json,
        expiresAt,
        ...(itemId === null ? {} : { itemId }),
        error: DAMAGED_JSON,
        failedAt,
      }));
      for (const letter of letters) this.#park(letter);
      return letters;
    })();
  }

  /** Parks a write as a dead letter, removing its pending row if it still matches. */
  deadLetter(letter: DeadLetter): void {
    this.#db.transaction(() => this.#park(letter))();
  }

  deadLetters(): DeadLetter[] {
    const rows = this.#db
      .prepare(
        'SELECT key, version, json, expires_at, item_id, error, failed_at FROM dead_letters ORDER BY id',
      )
      .raw()
      .all() as LetterRow[];
    return rows.map(([key, version, json, expiresAt, itemId, error, failedAt]) => ({
      key,
      version,
      json,
      expiresAt,
      ...(itemId === null ? {} : { itemId }),
      error,
      failedAt,
    }));
  }

  /** Moves dead letters (all, or those for `keys`) back to pending, queued at `now`, atomically; returns them. */
  requeueDeadLetters(keys: readonly string[] | undefined, now: number): DeadLetter[] {
    return this.#db.transaction(() => {
      // A letter whose JSON is damaged stays parked: re-queued, it would be sent to the store as is.
      const taken = this.deadLetters().filter((l) => (!keys || keys.includes(l.key)) && isIntact(l.json));
      for (const l of taken) {
        this.#deleteLetter.run(l.key, l.version, l.itemId ?? null);
        if (l.itemId === undefined)
          this.#upsertValue.run(l.key, l.version, l.json, l.expiresAt, now, 0, 0, l.version);
        else this.#insertItem.run(l.itemId, l.key, l.version, l.json, l.expiresAt, now, 0);
      }
      return taken;
    })();
  }

  #write(w: PendingWrite | PendingItem): void {
    if (isPendingItem(w)) {
      this.#insertItem.run(
        w.item.id,
        w.key,
        w.item.version,
        w.item.json,
        w.expiresAt,
        w.queuedAt,
        w.unanchored ? 1 : 0,
      );
      this.#raisePendingExpiry.run(w.expiresAt, w.expiresAt, w.key, w.item.version, w.queuedAt);
      return;
    }
    const logFloor = w.json === null ? 0 : (w.logFloor ?? 0);
    const row = [w.key, w.version, w.json, w.expiresAt, w.queuedAt, w.unanchored ? 1 : 0, logFloor] as const;
    this.#upsertValue.run(...row, w.version);
    // A delete takes the key's older items with it, here as in the store.
    if (w.json === null) this.#dropItemsBefore.run(w.key, w.version);
  }

  #park(letter: DeadLetter): void {
    if (letter.itemId === undefined) this.#deleteValue.run(letter.key, letter.version);
    else this.#deleteItem.run(letter.itemId);
    this.#raiseHighest.run(letter.version);
    this.#insertLetter.run(
      letter.key,
      letter.version,
      letter.json,
      letter.expiresAt,
      letter.itemId ?? null,
      letter.error,
      letter.failedAt,
    );
  }
}

function isIntact(json: string | null): boolean {
  if (json === null) return true;
  try {
    JSON.parse(json);
    return true;
  } catch {
    return false;
  }
}
