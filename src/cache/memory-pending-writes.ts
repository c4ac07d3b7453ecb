import { NO_LOG_FLOOR } from '../storage/contract/log-floor.js';
import { isAppend, type LogItem, type ValueWrite, type VersionedWrite } from '../storage/contract/types.js';
import type { PendingWrites } from '../sync/flush/pending-writes.js';
import { entryJson } from './entry.js';
import { itemsBeforeValue, refreshRuns } from './item-refresh.js';
import type { MemoryTier } from './memory-tier.js';

export interface FlushCounters {
  flushedWrites: number;
  deadLetters: number;
  superseded: number;
}

/** The flusher's view of the memory tier's dirty entries and unflushed items: what to send, and what became of it. */
export class MemoryPendingWrites implements PendingWrites {
  readonly #tier: MemoryTier;
  readonly #counters: FlushCounters;
  readonly #onStoreChanged: (key: string, version: number) => void;

  /**
   * `onStoreChanged` hears, as of a new local write, of each new version given to a write and of
   * items the store took: a store read of the key still in flight is stale.
   */
  constructor(
    tier: MemoryTier,
    counters: FlushCounters,
    onStoreChanged: (key: string, version: number) => void,
  ) {
    this.#tier = tier;
    this.#counters = counters;
    this.#onStoreChanged = onStoreChanged;
  }

  /**
   * Items appended before the first of the value's unflushed writes, then the value, then the items
   * appended after that (see `itemsBeforeValue`), those appended to the value sent apart from those
   * appended to values it replaced: the store must refresh the TTL of the value each item was
   * appended to, and no other. An item's refresh must reach the value it was appended to
   * before a newer value replaces it (a store reads a value written over an expired one as the
   * start of a new log); an item appended to the unflushed value must not refresh the older value
   * the store still holds (with the wall clock stepped back, that value may look live again when
   * the item was appended): memory already keeps its refresh in the value it sends.
   */
  writesFor(key: string): VersionedWrite[] {
    const writes: VersionedWrite[] = [];
    const items = this.#tier.pendingLogs.get(key)?.items ?? [];
    const entry = this.#tier.dirty.get(key);
    const before = entry ? itemsBeforeValue(items, entry.firstVersion) : items.length;
    this.#pushAppends(writes, key, before === items.length ? items : items.slice(0, before));
    if (entry) {
      const json = entryJson(entry);
      // Judged by the store at the time the first of the writes it coalesced was made (`since`),
      // which is when memory judged the value the store still holds.
      const write: ValueWrite = {
        key,
        version: entry.version,
        json,
        expiresAt: entry.expiresAt,
        writtenAt: entry.since,
      };
      if (entry.logFloor > NO_LOG_FLOOR) write.logFloor = entry.logFloor;
      if (entry.firstVersion < entry.version) write.firstVersion = entry.firstVersion;
      writes.push(write);
      // Those appended to a value the chain replaced are sent apart from those appended to this one:
      // their refresh went with the value they were appended to, and must not reach this one.
      const replaced = itemsBeforeValue(items, entry.version);
      if (before < replaced) this.#pushAppends(writes, key, items.slice(before, replaced));
      if (replaced < items.length) this.#pushAppends(writes, key, items.slice(replaced));
    }
    return writes;
  }

  /**
   * The items as appends, each a run the store judges once (live when its first item was appended)
   * exactly as memory judged each of its items in turn (see `refreshRuns`).
   */
  #pushAppends(writes: VersionedWrite[], key: string, items: readonly LogItem[]): void {
    for (const run of refreshRuns(items, (item) => this.#tier.appendOf(item))) {
      writes.push({
        key,
        version: (run.items[run.items.length - 1] as LogItem).version,
        json: null,
        expiresAt: run.expiresAt,
        appendedAt: run.appendedAt,
        items: run.items,
      });
    }
  }

  isPending(key: string): boolean {
    return this.#tier.hasPending(key);
  }

  applied(write: VersionedWrite): void {
    this.#counters.flushedWrites++;
    this.#flushed(write);
  }

  alreadyStored(write: VersionedWrite): void {
    this.#flushed(write);
  }

  unconfirmed(write: VersionedWrite): void {
    // Not counted as superseded: most often the store holds this very write.
    this.#tier.discard(write.key, write.version);
  }

  superseded(write: VersionedWrite): boolean {
    if (isAppend(write)) {
      // A newer tombstone refused the items: they are gone with the key.
      this.#tier.dropItemsUpTo(write.key, write.version, false);
      this.#counters.superseded++;
      return true;
    }
    if (!this.#tier.discard(write.key, write.version)) return false;
    this.#counters.superseded++;
    return true;
  }

  deadLettered(write: VersionedWrite): void {
    if (isAppend(write)) {
      this.#tier.dropItemsUpTo(write.key, write.version, false);
      this.#counters.deadLetters += write.items.length;
    } else {
      this.#tier.discard(write.key, write.version);
      this.#counters.deadLetters++;
    }
  }

  #flushed(write: VersionedWrite): void {
    if (isAppend(write)) {
      this.#tier.dropItemsUpTo(write.key, write.version, true);
      // A store read already in flight may predate these items, and they no longer wait in memory
      // to be merged into its answer: such a read must be asked again.
      this.#onStoreChanged(write.key, Number.MAX_SAFE_INTEGER);
    } else this.#tier.markFlushed(write.key, write.version);
  }
}
