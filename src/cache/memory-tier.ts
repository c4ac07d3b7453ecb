import { LRUCache } from 'lru-cache';
import type { StoredEntry } from '../storage/types.js';
import {
  cleanEntry,
  type DirtyEntry,
  dirtyEntry,
  type Entry,
  entryFromStored,
  isExpired,
  readValue,
} from './entry.js';
import { CorruptValueError } from './errors.js';

/** Returned by `lookup` when memory cannot answer and the store must be asked. */
export const MISS: unique symbol = Symbol('miss');

export interface MemoryTierOptions {
  maxEntries: number;
  maxBytes: number;
  onEvict: () => void;
}

/**
 * L1: dirty entries (unflushed, never evicted, bounded by the caller through `pendingBytes`) in
 * front of a bounded LRU of clean entries. Clean tombstones stay in the LRU as negative entries so a
 * slow read that started before a delete cannot bring the old value back.
 */
export class MemoryTier {
  readonly #dirty = new Map<string, DirtyEntry>();
  #pendingBytes = 0;
  readonly #lru: LRUCache<string, Entry>;

  constructor(options: MemoryTierOptions) {
    this.#lru = new LRUCache<string, Entry>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      sizeCalculation: (entry) => entry.bytes,
      dispose: (_entry, _key, reason) => {
        if (reason === 'evict') options.onEvict();
      },
    });
  }

  /** Unflushed entries by key, oldest first; changed only through this tier's methods. */
  get dirty(): ReadonlyMap<string, DirtyEntry> {
    return this.#dirty;
  }

  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  get cleanEntries(): number {
    return this.#lru.size;
  }

  get cleanBytes(): number {
    return this.#lru.calculatedSize;
  }

  /**
   * Value, `undefined` for a known absence, or `MISS` when only the store can answer. Throws
   * `CorruptValueError` for a value that is not valid JSON, and forgets it if it came from the store.
   */
  lookup(key: string): unknown {
    const dirty = this.#dirty.get(key);
    if (dirty !== undefined) {
      if (dirty.deleted || isExpired(dirty)) return undefined;
      try {
        return readValue(dirty, false);
      } catch (error) {
        throw new CorruptValueError(key, { cause: error });
      }
    }
    const clean = this.#lru.get(key);
    if (clean === undefined) return MISS;
    if (clean.deleted) return undefined;
    if (isExpired(clean)) {
      this.#lru.delete(key);
      return MISS;
    }
    try {
      return readValue(clean, true);
    } catch (error) {
      this.#lru.delete(key);
      throw new CorruptValueError(key, { cause: error });
    }
  }

  pendingBytesOf(key: string): number {
    return this.#dirty.get(key)?.bytes ?? 0;
  }

  /**
   * Makes `entry` the dirty state of `key` unless memory already holds a newer version.
   * Returns the entry it replaced, or undefined.
   */
  putDirty(key: string, entry: Entry, now: number): { replaced: DirtyEntry | undefined; accepted: boolean } {
    const replaced = this.#dirty.get(key);
    if (replaced && replaced.version >= entry.version) return { replaced, accepted: false };
    // A re-queued dead letter or a replayed row must not shadow a newer value memory already holds.
    if (!replaced && (this.#lru.peek(key)?.version ?? 0) >= entry.version)
      return { replaced, accepted: false };
    const dirty = dirtyEntry(entry, replaced?.since ?? now);
    this.#pendingBytes += dirty.bytes - (replaced?.bytes ?? 0);
    this.#dirty.set(key, dirty);
    this.#lru.delete(key);
    return { replaced, accepted: true };
  }

  /**
   * The store acknowledged `version` of `key` (applied, or superseded there). If it is still the
   * latest write, the entry leaves the dirty set and becomes a clean, evictable entry.
   */
  settle(key: string, version: number): boolean {
    const dirty = this.#dirty.get(key);
    if (!dirty || dirty.version !== version) return false;
    this.#dropDirty(key, dirty);
    if (dirty.parsed && !dirty.deleted) dirty.json = undefined;
    this.#lru.set(key, cleanEntry(dirty));
    return true;
  }

  /** Gives the dirty write `from` of `key` the version `to` (a re-mint before it is sent). */
  reversion(key: string, from: number, to: number): boolean {
    const dirty = this.#dirty.get(key);
    if (!dirty || dirty.version !== from) return false;
    dirty.version = to;
    return true;
  }

  /** A dead-lettered or superseded write: forget it in memory so reads reflect what the store holds. */
  discard(key: string, version: number): boolean {
    const dirty = this.#dirty.get(key);
    if (!dirty || dirty.version !== version) return false;
    this.#dropDirty(key, dirty);
    this.#lru.delete(key);
    return true;
  }

  /** Caches what a store read returned, unless memory already knows a newer version. */
  putLoaded(key: string, stored: StoredEntry): void {
    if (this.#dirty.has(key)) return;
    const current = this.#lru.peek(key);
    if (current && current.version >= stored.version) return;
    this.#lru.set(key, entryFromStored(key, stored));
  }

  #dropDirty(key: string, dirty: DirtyEntry): void {
    this.#dirty.delete(key);
    this.#pendingBytes -= dirty.bytes;
  }
}
