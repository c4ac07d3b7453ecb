import type { LogItem, ValueWrite } from '../../storage/contract/types.js';
import type { DeadLetter } from '../types.js';

/** A value write waiting in the outbox, with when it was first queued. */
export interface PendingWrite extends ValueWrite {
  queuedAt: number;
  /** Minted before the clock had read the store's high-water mark: re-minted before it is sent. */
  unanchored?: boolean;
}

/** An appended item waiting in the outbox (one row per item: an append costs O(item)), with the key's expiry it asked for. */
export interface PendingItem {
  key: string;
  item: LogItem;
  expiresAt: number | null;
  queuedAt: number;
  /** Minted before the clock had read the store's high-water mark: re-minted before it is sent. */
  unanchored?: boolean;
}

/** What the store acknowledged: a value write (its version), or appended items (by id). */
export interface Acknowledged {
  key: string;
  version: number;
  items?: readonly LogItem[] | undefined;
}

export function isPendingItem(row: PendingWrite | PendingItem): row is PendingItem {
  return 'item' in row;
}

/**
 * What a new outbox file is written with when the one in use was deleted or replaced: the pending
 * writes as memory holds them, then the writes that were on their way into the lost file.
 */
export interface OutboxRows {
  /** Each key's newest unflushed value write, with its log floor (`logFloor`) and `unanchored` flag as memory has them. */
  values: PendingWrite[];
  /** Unflushed appended items, oldest first. */
  items: PendingItem[];
  /** Writes the lost file refused while they were being recorded: recorded after the others, as `append` would. */
  appended: Array<PendingWrite | PendingItem>;
  /** The clock's newest version: a restart over the new file mints above it. */
  highestVersion: number;
}

/** A pending value write (or, with `itemId`, an appended item) given a new version when the clock is anchored. */
export interface VersionChange {
  key: string;
  from: number;
  to: number;
  itemId?: string;
  /** A value's new log floor, when the write that set it was given a new version too. */
  logFloor?: number;
}

/**
 * Where accepted writes wait until the store acknowledges them, and where writes that can never be
 * applied are parked. The cache calls `append` before a write is acknowledged to its caller.
 */
export interface Outbox {
  /** True when `append` persists (the write survives the process). */
  readonly durable: boolean;
  /** Why writes are being refused right now (file deleted or replaced, disk full), or undefined. */
  readonly failure: Error | undefined;
  /** True once the file was deleted or replaced underneath the open handle: nothing in it will be replayed. */
  readonly lost: boolean;
  /** Writes left by an earlier process, to replay on open. */
  pending(): PendingWrite[];
  /** Moves pending rows whose JSON is damaged to the dead letters, with the reason; returns them. Call before `pending`. */
  quarantineDamaged(): DeadLetter[];
  /** The highest version ever appended, so a restarted clock never mints a lower one. */
  highestVersion(): number;
  /** Appended items left by an earlier process, oldest first, to replay on open. */
  pendingItems(): PendingItem[];
  /**
   * Records a value write or an appended item; resolves once it is as durable as the outbox
   * promises. A tombstone also drops the key's older pending items.
   */
  append(write: PendingWrite | PendingItem): Promise<void>;
  /**
   * The clock is anchored: gives pending rows their new versions and marks every row (all of them
   * at or below `anchoredThrough`) anchored, in one transaction. Throws when that cannot be
   * written; nothing changes then.
   */
  anchor(changes: readonly VersionChange[], anchoredThrough: number): void;
  /**
   * New versions an outbox written by hybrid-cache 0.1 reserved for its unanchored rows (read at
   * replay; the next `anchor` writes them into the rows and drops the reservations).
   */
  reservedVersions(): Array<[from: number, to: number]>;
  /**
   * The store acknowledged these writes: drop each value row whose version still matches, and each
   * appended item's row (retried in the background if it cannot be written now).
   */
  acknowledge(writes: readonly Acknowledged[]): void;
  /** Parks a write (or, with `itemId`, an appended item) that can never be applied, removing its pending row if it still matches. */
  deadLetter(letter: DeadLetter): void;
  deadLetters(): DeadLetter[];
  /** Moves dead letters (all, or those for `keys`) back to pending, atomically; returns them. */
  requeueDeadLetters(keys?: readonly string[]): DeadLetter[];
  /**
   * Commits what is queued and closes; resolves once every file handle is released. Until then a
   * deleted log still holds its disk space, which a process reopening at once on a full disk needs.
   */
  close(): Promise<void>;
  // The two members below heal the outbox (SPEC invariant 14). Only an outbox over a file that can
  // be lost has them (`HealingOutbox`); the cache supplies the rows, as only memory still holds them.
  /**
   * Calls `listener` (on a later turn) when the file is found deleted or replaced, and again on
   * each maintenance tick until `reopen` succeeds. Set once, by the cache.
   */
  onLost?(listener: () => void): void;
  /**
   * After the file was lost: releases it, opens a new outbox at the same path (a foreign file
   * there is refused, as at start) and writes `rows()` into it in one transaction; `rows` is called
   * once the old file is released, just before that write. Writes are taken again once it
   * resolves. Rejects with `OutboxError` when that cannot be done (writes stay refused; the
   * listener is called again on the next tick).
   */
  reopen?(rows: () => OutboxRows): Promise<void>;
}

/** Durability `none`: nothing persists; dead letters are kept in memory for inspection. */
export class MemoryOutbox implements Outbox {
  readonly durable = false;
  readonly failure = undefined;
  readonly lost = false;
  #deadLetters: DeadLetter[] = [];

  pending(): PendingWrite[] {
    return [];
  }

  pendingItems(): PendingItem[] {
    return [];
  }

  quarantineDamaged(): DeadLetter[] {
    return [];
  }

  highestVersion(): number {
    return 0;
  }

  append(): Promise<void> {
    return Promise.resolve();
  }

  anchor(): void {}

  reservedVersions(): Array<[number, number]> {
    return [];
  }

  acknowledge(): void {}

  deadLetter(letter: DeadLetter): void {
    this.#deadLetters.push(letter);
  }

  deadLetters(): DeadLetter[] {
    return [...this.#deadLetters];
  }

  requeueDeadLetters(keys?: readonly string[]): DeadLetter[] {
    if (!keys) {
      const all = this.#deadLetters;
      this.#deadLetters = [];
      return all;
    }
    const wanted = new Set(keys);
    const taken = this.#deadLetters.filter((letter) => wanted.has(letter.key));
    this.#deadLetters = this.#deadLetters.filter((letter) => !wanted.has(letter.key));
    return taken;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
