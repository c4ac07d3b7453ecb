import { NO_LOG_FLOOR } from '../storage/contract/log-floor.js';
import { compareItems, type LogItem, type StoredEntry } from '../storage/contract/types.js';

/**
 * One key's state in memory. The serialized form is kept while the entry is dirty (it is what gets
 * flushed); the parsed value is materialised on first read, so memory always answers with exactly
 * what the store would hold and a caller's later mutation of the object it passed to `set` cannot
 * leak into the cache.
 */
export interface Entry {
  version: number;
  /** Absolute expiry (epoch ms) or null. */
  expiresAt: number | null;
  /** Serialized bytes counted against the budgets (value, or the key for a tombstone). */
  bytes: number;
  deleted: boolean;
  /** Serialized value; kept while dirty, dropped from clean entries once parsed. */
  json: string | undefined;
  value: unknown;
  parsed: boolean;
  /**
   * The key's stored (flushed) log items in `(version, id)` order, or undefined when memory does not
   * know them (a value written here before the key was ever read): the next log read loads them.
   */
  log: LogItem[] | undefined;
  /**
   * The log floor an unflushed value carries to the store (`ValueWrite.logFloor`): nonzero when it
   * replaced an unflushed delete (or a value that expired here), whose end of the key's older items
   * the store has not seen. 0 otherwise.
   */
  logFloor: number;
  /** Replayed from the outbox only: the version of the first write the row coalesced. */
  firstVersion?: number;
}

export interface DirtyEntry extends Entry {
  /** When this key first became dirty (epoch ms), for `oldestPendingAgeMs`. */
  since: number;
  /**
   * The version of the first of the unflushed writes this one replaced (its own when none): where
   * a new log started, should the value the store holds have ended (`ValueWrite.firstVersion`).
   */
  firstVersion: number;
  /**
   * Items of this process the store took while `log` was unknown: part of the stored log, which a
   * store read may not show yet (the value is still on its way), so they join it once it is learnt.
   */
  flushedItems?: LogItem[];
}

/** Fixed accounting cost of an entry besides its serialized value. */
export const ENTRY_OVERHEAD_BYTES = 64;

/** What an entry counts against the memory budgets: its serialized value, its key and a fixed overhead. */
export function entryBytes(key: string, jsonBytes: number): number {
  return jsonBytes + key.length + ENTRY_OVERHEAD_BYTES;
}

/** An unparsed entry for a serialized write whose size `bytes` the caller already counted. */
export function serializedEntry(
  version: number,
  json: string | null,
  expiresAt: number | null,
  bytes: number,
  log: LogItem[] | undefined = undefined,
): Entry {
  const deleted = json === null;
  return {
    version,
    expiresAt,
    bytes,
    deleted,
    json: json ?? undefined,
    value: undefined,
    parsed: deleted,
    log: deleted ? [] : log,
    logFloor: NO_LOG_FLOOR,
  };
}

/** What a log's items count against the memory budgets (a held item by the JSON it came from). */
export function logBytes(log: readonly LogItem[] | undefined): number {
  let bytes = 0;
  if (log) {
    for (const item of log) {
      const jsonBytes = isParsed(item) ? item.jsonBytes : item.json.length;
      bytes += jsonBytes + item.id.length + ITEM_OVERHEAD_BYTES;
    }
  }
  return bytes;
}

/**
 * A stored item as memory keeps it once parsed: its value only, not its JSON as well (a clean
 * log's items are never sent again), counted as the JSON it came from. `json` is empty.
 */
export interface ParsedItem extends LogItem {
  value: unknown;
  jsonBytes: number;
}

export function parsedItem(item: LogItem, value: unknown): ParsedItem {
  const jsonBytes = isParsed(item) ? item.jsonBytes : item.json.length;
  return { id: item.id, version: item.version, json: '', value, jsonBytes };
}

export function isParsed(item: LogItem): item is ParsedItem {
  return (item as Partial<ParsedItem>).jsonBytes !== undefined;
}

/** Fixed accounting cost of a log item besides its JSON and id. */
export const ITEM_OVERHEAD_BYTES = 32;

/**
 * An unparsed entry for a write replayed from the outbox (or a re-queued dead letter): the key's
 * stored log is unknown to it, so the next log read asks the store.
 */
export function entryFromOutbox(
  key: string,
  write: StoredEntry & { logFloor?: number | undefined; firstVersion?: number | undefined },
): Entry {
  const bytes = entryBytes(key, write.json?.length ?? 0);
  const entry = serializedEntry(write.version, write.json, write.expiresAt, bytes);
  entry.logFloor = write.json === null ? NO_LOG_FLOOR : (write.logFloor ?? NO_LOG_FLOOR);
  if (write.firstVersion !== undefined && write.firstVersion < write.version)
    entry.firstVersion = write.firstVersion;
  return entry;
}

/** An unparsed entry for an entry read from the store, with the key's log as the store returned it. */
export function entryFromStored(key: string, stored: StoredEntry): Entry {
  // Memory's own array: its items are replaced by held ones as they are read.
  const log = stored.items ? [...stored.items] : [];
  return serializedEntry(
    stored.version,
    stored.json,
    stored.expiresAt,
    entryBytes(key, stored.json?.length ?? 0) + logBytes(log),
    log,
  );
}

// Explicit literals rather than spreads: every entry then shares one object shape, which keeps
// property reads on the hot path monomorphic (a spread-built entry read 2x slower in the bench).
export function dirtyEntry(entry: Entry, since: number, firstVersion: number): DirtyEntry {
  return {
    version: entry.version,
    expiresAt: entry.expiresAt,
    bytes: entry.bytes,
    deleted: entry.deleted,
    json: entry.json,
    value: entry.value,
    parsed: entry.parsed,
    log: entry.log,
    logFloor: entry.logFloor,
    since,
    firstVersion,
  };
}

/** A clean copy of `entry`; `bytes` is what it counts against the LRU (its value and its known log). */
export function cleanEntry(entry: Entry, bytes = entry.bytes): Entry {
  return {
    version: entry.version,
    expiresAt: entry.expiresAt,
    bytes,
    deleted: entry.deleted,
    json: entry.json,
    value: entry.value,
    parsed: entry.parsed,
    log: entry.log,
    logFloor: NO_LOG_FLOOR,
  };
}

/** Merges two `(version, id)`-ordered item lists, each id once. */
export function mergeItems(a: readonly LogItem[], b: readonly LogItem[]): LogItem[] {
  if (b.length === 0) return a.slice();
  if (a.length === 0) return b.slice();
  const merged: LogItem[] = [];
  const seen = new Set<string>();
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    let next: LogItem | undefined;
    if (y === undefined || (x !== undefined && compareItems(x, y) <= 0)) {
      next = x;
      i++;
    } else {
      next = y;
      j++;
    }
    if (next && !seen.has(next.id)) {
      seen.add(next.id);
      merged.push(next);
    }
  }
  return merged;
}

export function isExpired(entry: Entry): boolean {
  return entry.expiresAt !== null && entry.expiresAt <= Date.now();
}

export function readValue(entry: Entry, dropJsonAfterParse: boolean): unknown {
  if (!entry.parsed) {
    entry.value = JSON.parse(entry.json as string);
    entry.parsed = true;
    if (dropJsonAfterParse) entry.json = undefined;
  }
  return entry.value;
}

/** The serialized form of an entry, parsed or not. */
export function entryJson(entry: Entry): string | null {
  if (entry.deleted) return null;
  return entry.json ?? JSON.stringify(entry.value);
}
