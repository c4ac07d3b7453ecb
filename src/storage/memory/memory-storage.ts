import { PermanentStorageError } from '../contract/errors.js';
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
  type ApplyResult,
  compareItems,
  isAppend,
  type LogItem,
  laterExpiry,
  type Storage,
  type StorageCallOptions,
  type StorageCleanupOptions,
  type StoredEntry,
  type VersionedWrite,
} from '../contract/types.js';

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

  async apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    opts?.signal?.throwIfAborted();
    return writes.map((write) => this.#applyOne(write));
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    opts?.signal?.throwIfAborted();
    let highest = 0;
    for (const entry of this.#entries.values()) if (entry.version > highest) highest = entry.version;
    for (const log of this.#logs.values())
      for (const item of log.values()) if (item.version > highest) highest = item.version;
    return highest;
  }

  /** Removes expired entries and tombstones older than the retention (by version time). */
  async cleanup(opts?: StorageCleanupOptions): Promise<number> {
    opts?.signal?.throwIfAborted();
    const retentionMs = nonNegativeMs(opts?.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS);
    const now = Date.now();
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

  #applyOne(write: VersionedWrite): ApplyResult {
    if (isAppend(write)) return this.#appendOne(write);
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
    if (floor > (this.#logFloors.get(write.key) ?? NO_LOG_FLOOR)) {
      this.#logFloors.set(write.key, floor);
      this.#dropItemsAtOrBelow(write.key, floor);
    }
    return { status: 'applied' };
  }

  #appendOne(write: AppendWrite): ApplyResult {
    const stored = this.#entries.get(write.key);
    const floor = this.#logFloors.get(write.key) ?? NO_LOG_FLOOR;
    let log = this.#logs.get(write.key);
    let accepted = 0;
    for (const item of write.items) {
      if (!isAboveFloor(item, floor)) continue;
      if (!log) {
        log = new Map();
        this.#logs.set(write.key, log);
      }
      if (!log.has(item.id)) log.set(item.id, { id: item.id, version: item.version, json: item.json });
      accepted++;
    }
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
