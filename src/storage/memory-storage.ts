import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  expiredTombstoneVersionBound,
  nonNegativeMs,
} from './tombstone-retention.js';
import type {
  ApplyResult,
  Storage,
  StorageCallOptions,
  StorageCleanupOptions,
  StoredEntry,
  VersionedWrite,
} from './types.js';

/**
 * An in-process store with last-writer-wins by version: for a single process that needs no
 * durability beyond its outbox, and for tests. To inject faults, wrap it (or any store) in
 * `FaultyStorage` from `hybrid-cache/testing`.
 */
export class MemoryStorage implements Storage {
  readonly #entries = new Map<string, StoredEntry>();

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    opts?.signal?.throwIfAborted();
    const found = new Map<string, StoredEntry>();
    const now = Date.now();
    for (const key of keys) {
      const entry = this.#entries.get(key);
      if (!entry || isExpired(entry, now)) continue;
      found.set(key, { ...entry });
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
        removed++;
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

  #applyOne(write: VersionedWrite): ApplyResult {
    const stored = this.#entries.get(write.key);
    if (stored && stored.version >= write.version) return { status: 'stale', storedVersion: stored.version };
    this.#entries.set(write.key, { version: write.version, json: write.json, expiresAt: write.expiresAt });
    return { status: 'applied' };
  }
}

function isExpired(entry: StoredEntry, now: number): boolean {
  return entry.json !== null && entry.expiresAt !== null && entry.expiresAt <= now;
}
