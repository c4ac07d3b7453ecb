import { LRUCache } from 'lru-cache';
import {
  appliedLogFloor,
  hasEnded,
  itemsAboveFloor,
  NO_LOG_FLOOR,
  storedHasEnded,
  valueLogFloor,
} from '../storage/contract/log-floor.js';
import { type FeedChange, type LogItem, laterExpiry, type StoredEntry } from '../storage/contract/types.js';
import {
  cleanEntry,
  type DirtyEntry,
  dirtyEntry,
  type Entry,
  entryFromStored,
  isExpired,
  logBytes,
  mergeItems,
  readValue,
} from './entry.js';
import { CorruptValueError } from './errors.js';
import { type ItemAppend, itemsBeforeValue, refreshedExpiry, refreshRuns } from './item-refresh.js';
import { ItemValues } from './item-values.js';
import { type PendingLog, PendingLogs } from './pending-logs.js';

export type { PendingLog } from './pending-logs.js';

/** Returned by `lookup` when memory cannot answer and the store must be asked. */
export const MISS: unique symbol = Symbol('miss');

/** A key's value with its log's items (stored and unflushed, in `(version, id)` order), parsed. */
export interface ValueWithLog {
  value: unknown;
  items: unknown[];
}

export interface MemoryTierOptions {
  maxEntries: number;
  maxBytes: number;
  onEvict: () => void;
  /** Where a value's log floor (`logFloor`) will be once sent (it moves when the value is re-minted). */
  effectiveFloor?: (logFloor: number) => number;
}

/**
 * L1: dirty entries (unflushed, never evicted, bounded by the caller through `pendingBytes`) in
 * front of a bounded LRU of clean entries. Clean tombstones stay in the LRU as negative entries so a
 * slow read that started before a delete cannot bring the old value back.
 */
export class MemoryTier {
  readonly #dirty = new Map<string, DirtyEntry>();
  readonly #items = new PendingLogs();
  /** Parsed values of items not held yet (unflushed ones, or stored ones not kept in memory), by item object. */
  readonly #itemValues = new ItemValues();
  #pendingBytes = 0;
  readonly #lru: LRUCache<string, Entry>;
  readonly #effectiveFloor: (logFloor: number) => number;

  constructor(options: MemoryTierOptions) {
    this.#effectiveFloor = options.effectiveFloor ?? ((logFloor) => logFloor);
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

  /** Unflushed appended items by key, oldest first. */
  get pendingLogs(): ReadonlyMap<string, PendingLog> {
    return this.#items.byKey;
  }

  get pendingBytes(): number {
    return this.#pendingBytes + this.#items.bytes;
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
    // A cache with nothing unflushed (the common case for reads) skips the second map lookup.
    const dirty = this.#dirty.size === 0 ? undefined : this.#dirty.get(key);
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

  /**
   * The value with its log, `undefined` for a known absence, or `MISS` when the store must be asked
   * (the value, or the key's stored items, are not in memory).
   */
  lookupWithLog(key: string): ValueWithLog | undefined | typeof MISS {
    const value = this.lookup(key);
    if (value === MISS || value === undefined) return value;
    const log = (this.#dirty.get(key) ?? this.#lru.peek(key))?.log;
    if (log === undefined) return MISS;
    try {
      this.#itemValues.keepParsed(log);
      return { value, items: this.itemValues(mergeItems(log, this.#items.itemsOf(key))) };
    } catch (error) {
      this.#lru.delete(key);
      throw new CorruptValueError(key, { cause: error });
    }
  }

  /** The parsed values of `items`, each parsed once while memory holds it; throws on invalid JSON. */
  itemValues(items: readonly LogItem[]): unknown[] {
    return this.#itemValues.of(items);
  }

  /** When an item appended in this process was appended and the expiry it asked for. */
  appendOf(item: LogItem): ItemAppend | undefined {
    return this.#items.appendOf(item);
  }

  /** Items read from the store for `key`, merged with this process's unflushed ones. */
  withPendingItems(key: string, stored: readonly LogItem[]): LogItem[] {
    return mergeItems(stored, this.#items.itemsOf(key));
  }

  hasPending(key: string): boolean {
    return this.#dirty.has(key) || this.#items.byKey.has(key);
  }

  /** Records an unflushed appended item and raises the key's expiry in memory to `expiresAt`. */
  appendItem(key: string, item: LogItem, expiresAt: number | null, bytes: number, now: number): void {
    this.#items.add(key, item, expiresAt, bytes, now);
    const entry = this.#dirty.get(key) ?? this.#lru.peek(key);
    // An expired key stays expired: appending to it never brings its value back. Judged at the
    // time the item was appended (`now`; for a replayed item, when it was queued), as the store does.
    // Only a value older than the item: a newer value set its own expiry after the item was appended.
    const liveThen =
      entry !== undefined &&
      entry.version < item.version &&
      (entry.expiresAt === null || entry.expiresAt > now);
    if (entry && !entry.deleted && liveThen) entry.expiresAt = laterExpiry(entry.expiresAt, expiresAt);
  }

  /**
   * The store took the items of `key` up to `version` (or refused them for good, `keep` false):
   * they leave the unflushed log and, when kept and memory knows the key's stored log, join it.
   */
  dropItemsUpTo(key: string, version: number, keep: boolean): void {
    const done = this.#items.takeUpTo(key, version);
    if (done.length === 0 || !keep) return;
    // Items already read keep only their parsed value from now on.
    const stored = done.map((item) => this.#itemValues.held(item));
    const dirty = this.#dirty.get(key);
    if (dirty) {
      if (dirty.log !== undefined) dirty.log = mergeItems(dirty.log, stored);
      else dirty.flushedItems = mergeItems(dirty.flushedItems ?? [], stored);
      return;
    }
    const clean = this.#lru.peek(key);
    if (clean?.log === undefined) return;
    const grown = { ...clean, log: mergeItems(clean.log, stored) };
    // An item a read already brought into the log is counted once.
    this.#lru.set(key, cleanEntry(grown, clean.bytes - logBytes(clean.log) + logBytes(grown.log)));
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
    const dirty = dirtyEntry(
      entry,
      replaced?.since ?? now,
      replaced?.firstVersion ?? entry.firstVersion ?? entry.version,
    );
    const previous = replaced ?? this.#lru.peek(key);
    // Judged at the time the write was made, as every store judges it (`ValueWrite.writtenAt`).
    const ended = previous !== undefined && hasEnded(previous, now);
    // A value coalesced over an unflushed delete (or an unflushed value that had expired, unseen by
    // the store) still has to end the key's log in the store. (Over a value the store holds, the
    // store sees the end itself, and starts the new log at the chain's `firstVersion`.)
    if (!entry.deleted && replaced) {
      dirty.logFloor = valueLogFloor(entry.version, ended, Math.max(entry.logFloor, replaced.logFloor));
    }
    if (entry.deleted) {
      // A delete takes the key's items with it: every unflushed one here is older.
      this.#items.takeUpTo(key, entry.version - 1);
    } else if (dirty.log === undefined) {
      // A value replaces a value, never the log; after a delete or an expiry the log starts empty.
      if (ended) this.#items.takeUpTo(key, entry.version - 1);
      dirty.log = ended ? [] : previous?.log;
      if (!ended && replaced?.flushedItems) dirty.flushedItems = replaced.flushedItems;
    }
    this.#pendingBytes += dirty.bytes - (replaced?.bytes ?? 0);
    this.#dirty.set(key, dirty);
    this.#lru.delete(key);
    return { replaced, accepted: true };
  }

  /**
   * The store acknowledged `version` of `key` (applied, or superseded there). If it is still the
   * latest write, the entry leaves the dirty set and becomes a clean, evictable entry.
   */
  markFlushed(key: string, version: number): boolean {
    const dirty = this.#dirty.get(key);
    if (!dirty || dirty.version !== version) return false;
    this.#dropDirty(key, dirty);
    if (dirty.parsed && !dirty.deleted) dirty.json = undefined;
    this.#lru.set(key, cleanEntry(dirty, dirty.bytes + logBytes(dirty.log)));
    return true;
  }

  /** Gives the dirty write `from` of `key` the version `to` (a re-mint before it is sent), and its log floor a new place. */
  changeVersion(key: string, from: number, to: number, logFloor?: number): boolean {
    const dirty = this.#dirty.get(key);
    if (!dirty || dirty.version !== from) return false;
    // The first write of the chain keeps its place unless it is this one (written before `to` otherwise).
    if (dirty.firstVersion === from) dirty.firstVersion = to;
    dirty.version = to;
    if (logFloor !== undefined) dirty.logFloor = logFloor;
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
    const storedLog = stored.json === null || !stored.items ? [] : [...stored.items];
    const dirty = this.#dirty.get(key);
    if (dirty) {
      this.#learnLog(dirty, dirty.deleted ? [] : storedLog, this.#asSentBefore(key, dirty, stored));
      return;
    }
    const current = this.#lru.peek(key);
    if (current && current.version >= stored.version) {
      // Memory's value is as new; the store still supplies the log memory did not know.
      if (current.log === undefined && !current.deleted) {
        this.#lru.set(key, cleanEntry({ ...current, log: storedLog }, current.bytes + logBytes(storedLog)));
      }
      return;
    }
    this.#lru.set(key, entryFromStored(key, stored));
  }

  /**
   * A change committed to the store (by any instance, this one included): a clean copy it makes
   * outdated is dropped, and so is an unflushed value's knowledge of the stored log. Unflushed
   * writes themselves stay (one that loses is reported when it is flushed). Returns whether a
   * clean entry was dropped.
   */
  applyChange(change: FeedChange): boolean {
    const { key, itemId } = change;
    // Whatever a value's version, an item from elsewhere may belong to its log (clocks differ).
    const unknownItem = (log: readonly LogItem[] | undefined): boolean =>
      itemId !== undefined && !knowsItem(log, itemId) && !knowsItem(this.#items.itemsOf(key), itemId);
    const dirty = this.#dirty.get(key);
    if (dirty) {
      if (dirty.log !== undefined && unknownItem(dirty.log)) this.#relearnLog(dirty);
      return false;
    }
    const clean = this.#lru.peek(key);
    if (clean === undefined) return false;
    const outdated =
      itemId === undefined
        ? clean.version < change.version
        : clean.log !== undefined && unknownItem(clean.log);
    if (outdated) this.#lru.delete(key);
    return outdated;
  }

  /** Nothing cached can be vouched for (the store was replaced, or changes were missed): clean entries go, unflushed ones forget the stored log. Returns how many entries were dropped. */
  forgetStored(): number {
    const dropped = this.#lru.size;
    this.#lru.clear();
    for (const dirty of this.#dirty.values()) this.#relearnLog(dirty);
    return dropped;
  }

  /**
   * The next read learns an unflushed value's stored log again. Items it knew stay, as items the
   * store took (a stored log read while this value is on its way may not show them).
   */
  #relearnLog(dirty: DirtyEntry): void {
    if (dirty.log === undefined) return;
    dirty.flushedItems = mergeItems(dirty.flushedItems ?? [], dirty.log);
    dirty.log = undefined;
  }

  /** The version memory holds for `key` (unflushed or clean), if any. */
  knownVersion(key: string): number | undefined {
    return (this.#dirty.get(key) ?? this.#lru.peek(key))?.version;
  }

  /**
   * Whether the key's unflushed value may continue a stored log the store now hides: memory does not
   * know its stored log, and time has passed since it was written, so the store may hold a value
   * that was live then (the log goes on) and has expired since (the store reads the key as absent).
   */
  mayContinueHiddenLog(key: string): boolean {
    const dirty = this.#dirty.get(key);
    return dirty !== undefined && !dirty.deleted && dirty.log === undefined && Date.now() > dirty.since;
  }

  /** The store holds nothing for `key`: a value memory holds for it has an empty stored log. */
  learnAbsent(key: string): void {
    const dirty = this.#dirty.get(key);
    if (dirty) this.#learnLog(dirty, []);
  }

  /**
   * The stored value as the key's unflushed value will find it: its expiry raised by the items
   * appended to it before that value, which are sent ahead of it (see `MemoryPendingWrites`).
   */
  #asSentBefore(key: string, dirty: DirtyEntry, stored: StoredEntry): StoredEntry {
    const items = this.#items.itemsOf(key);
    if (items.length === 0 || stored.json === null) return stored;
    const before = items.slice(0, itemsBeforeValue(items, dirty.firstVersion));
    if (before.length === 0) return stored;
    const runs = refreshRuns(before, (item) => this.#items.appendOf(item));
    return { ...stored, expiresAt: refreshedExpiry(stored.version, stored.expiresAt, runs) };
  }

  #learnLog(dirty: DirtyEntry, stored: LogItem[], replaced?: StoredEntry): void {
    // An unflushed value that ends the key's older items (written over a delete) hides them already.
    let floor = dirty.logFloor > NO_LOG_FLOOR ? this.#effectiveFloor(dirty.logFloor) : NO_LOG_FLOOR;
    // So does one written when the value the store holds had already expired, whether or not that
    // value reads as live now (the wall clock may have stepped back since): the store will judge it
    // at the time the write was made (`writtenAt`, the chain's `since`) and start the new log where
    // `appliedLogFloor` says, so memory shows that now.
    if (replaced && !dirty.deleted && storedHasEnded(replaced, { writtenAt: dirty.since }, dirty.since)) {
      const write = {
        version: dirty.version,
        json: '',
        logFloor: dirty.logFloor,
        firstVersion: dirty.firstVersion < dirty.version ? dirty.firstVersion : undefined,
      };
      const ends = appliedLogFloor(write, { version: replaced.version, ended: true });
      floor = Math.max(floor, this.#effectiveFloor(ends));
    }
    const live = itemsAboveFloor(stored, floor);
    if (dirty.log === undefined) dirty.log = dirty.deleted ? [] : mergeItems(live, dirty.flushedItems ?? []);
    dirty.flushedItems = undefined;
  }

  #dropDirty(key: string, dirty: DirtyEntry): void {
    this.#dirty.delete(key);
    this.#pendingBytes -= dirty.bytes;
  }
}

function knowsItem(log: readonly LogItem[] | undefined, id: string): boolean {
  return log?.some((item) => item.id === id) ?? false;
}
