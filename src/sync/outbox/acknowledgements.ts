import type { Acknowledged } from './outbox.js';
import type { AcknowledgedItem, AcknowledgedValue } from './outbox-tables.js';

const scheduleSoon = globalThis.setImmediate.bind(globalThis);

/** What deleting acknowledged rows needs from the rest of the outbox. */
export interface AcknowledgementHooks {
  /** Deletes the rows in one transaction; throws when it cannot. */
  delete(values: readonly AcknowledgedValue[], items: readonly AcknowledgedItem[]): void;
  /** Rows to delete per transaction now. */
  chunk(): number;
  /** A checkpoint under way resumes the deletions when done (see `resume`). */
  paused(): boolean;
  /** A deletion failed; `progressed` when some rows were deleted since the previous failure. */
  failed(error: unknown, progressed: boolean): void;
  /** A deletion succeeded; `drained` once nothing is left to delete. */
  deleted(drained: boolean): void;
}

/**
 * Acknowledged rows waiting to be deleted. The store's acknowledgement never waits for the disk:
 * rows are deleted over the next turns of the event loop, a chunk per turn, and a chunk that cannot
 * be written (disk full) is kept and retried. Until then the rows stay, and a restart would re-send
 * them (answered stale).
 */
export class AcknowledgementQueue {
  readonly #hooks: AcknowledgementHooks;
  /** Value rows by key, at the version acknowledged. */
  readonly #values = new Map<string, number>();
  /** Appended items by id, with their versions. */
  readonly #items = new Map<string, number>();
  #scheduled = false;
  #stopped = false;
  #progressed = false;

  constructor(hooks: AcknowledgementHooks) {
    this.#hooks = hooks;
  }

  /** Rows acknowledged but not yet deleted. */
  get size(): number {
    return this.#values.size + this.#items.size;
  }

  add(writes: readonly Acknowledged[]): void {
    if (this.#stopped) return;
    for (const w of writes) {
      if (w.items) {
        for (const item of w.items) this.#items.set(item.id, item.version);
      } else if ((this.#values.get(w.key) ?? 0) < w.version) {
        this.#values.set(w.key, w.version);
      }
    }
    this.resume();
  }

  /** Deletes a chunk on the next turn, and a chunk per turn after it, until none is left or one fails. */
  resume(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    scheduleSoon(() => {
      this.#scheduled = false;
      if (this.deleteNow(this.#hooks.chunk()) && this.size > 0 && !this.#hooks.paused()) this.resume();
    });
  }

  /** Deletes up to `limit` rows in one transaction; false when it could not (they are kept for a retry). */
  deleteNow(limit = Number.POSITIVE_INFINITY): boolean {
    if (this.size === 0 || this.#stopped) return true;
    const values: AcknowledgedValue[] = [];
    for (const [key, version] of this.#values) {
      if (values.length >= limit) break;
      values.push({ key, version });
    }
    const items: AcknowledgedItem[] = [];
    for (const entry of this.#items) {
      if (values.length + items.length >= limit) break;
      items.push(entry);
    }
    try {
      this.#hooks.delete(values, items);
    } catch (error) {
      const progressed = this.#progressed;
      this.#progressed = false;
      this.#hooks.failed(error, progressed);
      return false;
    }
    this.#progressed = true;
    // A newer version acknowledged meanwhile stays queued: only the entries written are done.
    for (const v of values) if (this.#values.get(v.key) === v.version) this.#values.delete(v.key);
    for (const [id] of items) this.#items.delete(id);
    this.#hooks.deleted(this.size === 0);
    return true;
  }

  /** Forgets every row (the file they were in is lost). */
  clear(): void {
    this.#values.clear();
    this.#items.clear();
  }

  /** Ignores acknowledgements from now on (the outbox is closed). */
  stop(): void {
    this.#stopped = true;
  }
}
