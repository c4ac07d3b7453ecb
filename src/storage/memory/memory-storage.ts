import { randomUUID } from 'node:crypto';
import { PermanentStorageError } from '../contract/errors.js';
import {
  cursorIsServable,
  DEFAULT_FEED_RETENTION_MS,
  type FeedPosition,
  feedPageLimit,
  formatCursor,
  headPage,
  parseCursor,
} from '../contract/feed.js';
import {
  appliedLogFloor,
  isAboveFloor,
  logFloorProblem,
  NO_LOG_FLOOR,
  storedHasEnded,
} from '../contract/log-floor.js';
import { staleAnswer } from '../contract/stale-answer.js';
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  expiredTombstoneVersionBound,
  nonNegativeMs,
} from '../contract/tombstone-retention.js';
import {
  type AppendWrite,
  type ApplyOptions,
  type ApplyResult,
  compareItems,
  type FeedChange,
  type FeedPage,
  type FeedReadOptions,
  isAppend,
  type LogItem,
  laterExpiry,
  type Storage,
  type StorageCallOptions,
  type StorageCleanupOptions,
  type StoredEntry,
  type VersionedWrite,
} from '../contract/types.js';

export interface MemoryStorageOptions {
  /**
   * How long `cleanup()` keeps the change feed. Default `DEFAULT_FEED_RETENTION_MS` (1 hour, see
   * there): long enough for a paused follower to catch up instead of dropping its cache.
   */
  feedRetentionMs?: number;
}

/** A change as the log keeps it: its id (increasing in apply order), when it was recorded, and by whom. */
interface LoggedChange extends FeedChange {
  id: number;
  at: number;
  origin: string | undefined;
}

/**
 * An in-process store with last-writer-wins by version: for a single process that needs no
 * durability beyond its outbox, and for tests. To inject faults, wrap it (or any store) in
 * `FaultyStorage` from `hybrid-cache/testing`.
 */
export class MemoryStorage implements Storage {
  readonly #entries = new Map<string, StoredEntry>();
  /** Each key's log by item id (kept apart from the value: a value write never touches it). */
  readonly #logs = new Map<string, Map<string, LogItem>>();
  /** Each key's log floor: items at or below it are gone and refused, even after a later value replaced the tombstone. */
  readonly #logFloors = new Map<string, number>();
  /** Identifies this instance's feed: a new store (a restarted process) is a new epoch. */
  readonly #epoch = randomUUID();
  /** The change feed in id order; cleanup removes a prefix but always keeps the newest change. */
  readonly #changes: LoggedChange[] = [];
  #lastChangeId = 0;
  #prunedThrough = 0;
  readonly #feedRetentionMs: number;

  constructor(options: MemoryStorageOptions = {}) {
    this.#feedRetentionMs = nonNegativeMs(
      options.feedRetentionMs ?? DEFAULT_FEED_RETENTION_MS,
      'feedRetentionMs',
    );
  }

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    opts?.signal?.throwIfAborted();
    const found = new Map<string, StoredEntry>();
    const now = Date.now();
    for (const key of keys) {
      const entry = this.#entries.get(key);
      if (!entry || isExpired(entry, now)) continue;
      const items = entry.json === null ? [] : this.#itemsOf(key);
      found.set(key, items.length > 0 ? { ...entry, items } : { ...entry });
    }
    return found;
  }

  async apply(writes: VersionedWrite[], opts?: ApplyOptions): Promise<ApplyResult[]> {
    opts?.signal?.throwIfAborted();
    return writes.map((write) => this.#applyOne(write, opts?.origin || undefined));
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    opts?.signal?.throwIfAborted();
    let highest = 0;
    for (const entry of this.#entries.values()) if (entry.version > highest) highest = entry.version;
    for (const log of this.#logs.values())
      for (const item of log.values()) if (item.version > highest) highest = item.version;
    return highest;
  }

  /** Changes applied to this instance after `after`; see `Storage.changes`. */
  async changes(after: string | null, opts?: FeedReadOptions): Promise<FeedPage> {
    opts?.signal?.throwIfAborted();
    const limit = feedPageLimit(opts);
    const epoch = this.#epoch;
    const newest = this.#changes.at(-1);
    const head: FeedPosition = newest ? { id: newest.id, version: newest.version } : { id: 0, version: 0 };
    if (after === null) return headPage(epoch, head, false);
    const position = parseCursor(after, epoch);
    // Ids are dense from the first change held, so an id's index is its offset from that one.
    const first = this.#changes[0]?.id ?? 0;
    const versionOf = (id: number) => this.#changes[id - first]?.version;
    if (!position || !cursorIsServable(position, { head, prunedThrough: this.#prunedThrough, versionOf })) {
      return headPage(epoch, head, true);
    }
    const start = Math.max(0, position.id + 1 - first);
    const page = this.#changes.slice(start, start + limit);
    const last = page.at(-1);
    // The reader's own changes are left out, but the cursor moves past them all the same.
    const skip = opts?.skipOrigin || undefined;
    const shown = skip === undefined ? page : page.filter((change) => change.origin !== skip);
    return {
      epoch,
      cursor: formatCursor(epoch, last ?? position),
      changes: shown.map(({ key, version, itemId }) =>
        itemId === undefined ? { key, version } : { key, version, itemId },
      ),
      reset: false,
      more: start + limit < this.#changes.length,
    };
  }

  /**
   * Removes expired entries and tombstones older than the retention (by version time), and the
   * feed's changes older than `feedRetentionMs` (never the newest). Returns how many entries and
   * items were removed; pruned changes are not counted.
   */
  async cleanup(opts?: StorageCleanupOptions): Promise<number> {
    opts?.signal?.throwIfAborted();
    const retentionMs = nonNegativeMs(opts?.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS);
    const now = Date.now();
    this.#pruneChanges(now - this.#feedRetentionMs);
    const tombstoneBound = expiredTombstoneVersionBound(retentionMs, now);
    let removed = 0;
    for (const [key, entry] of this.#entries) {
      if (isExpired(entry, now) || (entry.json === null && entry.version < tombstoneBound)) {
        this.#entries.delete(key);
        this.#logFloors.delete(key);
        removed++;
      }
    }
    // A key's items live exactly as long as its value.
    for (const [key, log] of this.#logs) {
      const entry = this.#entries.get(key);
      if (!entry || entry.json === null || isExpired(entry, now)) {
        removed += log.size;
        this.#logs.delete(key);
      }
    }
    return removed;
  }

  async close(): Promise<void> {}

  /** The raw stored entry, tombstones and expired entries included. */
  peek(key: string): StoredEntry | undefined {
    const entry = this.#entries.get(key);
    return entry && { ...entry };
  }

  /** All stored keys with their raw entries. */
  dump(): Map<string, StoredEntry> {
    return new Map([...this.#entries].map(([k, v]) => [k, { ...v }]));
  }

  /** A key's stored items in `(version, id)` order, tombstoned or not. */
  peekItems(key: string): LogItem[] {
    return this.#itemsOf(key);
  }

  #itemsOf(key: string): LogItem[] {
    const log = this.#logs.get(key);
    return log ? [...log.values()].map((item) => ({ ...item })).sort(compareItems) : [];
  }

  #applyOne(write: VersionedWrite, origin: string | undefined): ApplyResult {
    if (isAppend(write)) return this.#appendOne(write, origin);
    const problem = logFloorProblem(write);
    if (problem)
      return { status: 'rejected', error: new PermanentStorageError(`${problem} (key ${write.key})`) };
    const stored = this.#entries.get(write.key);
    if (stored && stored.version >= write.version) return staleAnswer(write, stored);
    const floor = appliedLogFloor(
      write,
      stored && { version: stored.version, ended: storedHasEnded(stored, write, Date.now()) },
    );
    this.#entries.set(write.key, { version: write.version, json: write.json, expiresAt: write.expiresAt });
    this.#record(origin, write.key, write.version);
    if (floor > (this.#logFloors.get(write.key) ?? NO_LOG_FLOOR)) {
      this.#logFloors.set(write.key, floor);
      this.#dropItemsAtOrBelow(write.key, floor);
    }
    return { status: 'applied' };
  }

  #appendOne(write: AppendWrite, origin: string | undefined): ApplyResult {
    const stored = this.#entries.get(write.key);
    const floor = this.#logFloors.get(write.key) ?? NO_LOG_FLOOR;
    let log = this.#logs.get(write.key);
    let accepted = 0;
    let newest: LogItem | undefined;
    for (const item of write.items) {
      if (!isAboveFloor(item, floor)) continue;
      if (!log) {
        log = new Map();
        this.#logs.set(write.key, log);
      }
      accepted++;
      if (log.has(item.id)) continue;
      log.set(item.id, { id: item.id, version: item.version, json: item.json });
      if (!newest || compareItems(item, newest) > 0) newest = item;
    }
    // Only an item stored now is news: a re-sent append changes nothing a follower holds.
    if (newest) this.#record(origin, write.key, newest.version, newest.id);
    if (accepted === 0 && stored) return { status: 'stale', storedVersion: stored.version };
    if (
      stored &&
      stored.json !== null &&
      stored.version < write.version &&
      !isExpired(stored, write.appendedAt)
    ) {
      stored.expiresAt = laterExpiry(stored.expiresAt, write.expiresAt);
    }
    return { status: 'applied' };
  }

  #record(origin: string | undefined, key: string, version: number, itemId?: string): void {
    const change: LoggedChange = { id: ++this.#lastChangeId, key, version, at: Date.now(), origin };
    if (itemId !== undefined) change.itemId = itemId;
    this.#changes.push(change);
  }

  /** Drops the changes up to the newest one recorded at or before `cutoff`, keeping the newest. */
  #pruneChanges(cutoff: number): void {
    let count = 0;
    for (let i = 0; i < this.#changes.length - 1; i++) {
      if ((this.#changes[i] as LoggedChange).at <= cutoff) count = i + 1;
    }
    if (count === 0) return;
    this.#prunedThrough = (this.#changes[count - 1] as LoggedChange).id;
    this.#changes.splice(0, count);
  }

  #dropItemsAtOrBelow(key: string, floor: number): void {
    const log = this.#logs.get(key);
    if (!log) return;
    for (const [id, item] of log) if (!isAboveFloor(item, floor)) log.delete(id);
    if (log.size === 0) this.#logs.delete(key);
  }
}

function isExpired(entry: StoredEntry, now: number): boolean {
  return entry.json !== null && entry.expiresAt !== null && entry.expiresAt <= now;
}
