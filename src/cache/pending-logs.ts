import type { LogItem } from '../storage/contract/types.js';
import { logBytes, mergeItems } from './entry.js';
import type { ItemAppend } from './item-refresh.js';

/** Items appended to a key and not yet flushed, oldest first. */
export interface PendingLog {
  items: LogItem[];
  bytes: number;
  since: number;
}

/**
 * The unflushed appended items of every key (beside, not inside, the dirty values: they flush
 * separately), with the bytes they count against the backlog.
 */
export class PendingLogs {
  readonly #logs = new Map<string, PendingLog>();
  /**
   * Each unflushed item's own append time and asked expiry: a store must judge each item's TTL
   * refresh as memory did (live or not when it was appended), which one time and expiry for all
   * of a key's pending items cannot say once the key expires between them or the clock steps back.
   */
  readonly #appends = new WeakMap<LogItem, ItemAppend>();
  #bytes = 0;

  /** By key, oldest first. */
  get byKey(): ReadonlyMap<string, PendingLog> {
    return this.#logs;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The key's unflushed items, oldest first (none: empty). */
  itemsOf(key: string): readonly LogItem[] {
    return this.#logs.get(key)?.items ?? [];
  }

  /** When an item appended in this process was appended and the expiry it asked for. */
  appendOf(item: LogItem): ItemAppend | undefined {
    return this.#appends.get(item);
  }

  add(key: string, item: LogItem, expiresAt: number | null, bytes: number, now: number): void {
    let pending = this.#logs.get(key);
    if (!pending) {
      pending = { items: [], bytes: 0, since: now };
      this.#logs.set(key, pending);
    }
    const last = pending.items[pending.items.length - 1];
    if (last === undefined || last.version < item.version) pending.items.push(item);
    else pending.items = mergeItems(pending.items, [item]);
    this.#appends.set(item, { at: now, expiresAt });
    pending.bytes += bytes;
    this.#bytes += bytes;
  }

  /** Removes and returns the key's items up to `version` (the store took or refused them). */
  takeUpTo(key: string, version: number): LogItem[] {
    const pending = this.#logs.get(key);
    if (!pending) return [];
    const done = pending.items.filter((item) => item.version <= version);
    if (done.length === 0) return done;
    pending.items = pending.items.filter((item) => item.version > version);
    const bytes = logBytes(done);
    pending.bytes = Math.max(0, pending.bytes - bytes);
    this.#bytes -= bytes;
    if (pending.items.length === 0) {
      this.#bytes -= pending.bytes;
      this.#logs.delete(key);
    }
    return done;
  }
}
