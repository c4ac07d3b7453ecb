import { isPendingItem, type PendingItem, type PendingWrite } from './outbox.js';
import type { UnanchoredRows } from './space-policy.js';

/** A row's key, item id and JSON in bytes: what its size on disk grows with. */
export function rowByteLength(w: PendingWrite | PendingItem): number {
  if (isPendingItem(w)) return Buffer.byteLength(w.key) + w.item.id.length + Buffer.byteLength(w.item.json);
  return Buffer.byteLength(w.key) + (w.json === null ? 0 : Buffer.byteLength(w.json));
}

/** Rows that could not be counted: the room kept is then a rewrite of every page in use. */
const UNCOUNTED: UnanchoredRows = { count: Number.POSITIVE_INFINITY, bytes: Number.POSITIVE_INFINITY };

/**
 * The rows the anchoring step will rewrite, tallied as they commit, so that low-disk admission keeps
 * room for that rewrite without a query per commit. An over-count (a key written twice before the
 * anchor, an item a delete dropped) only keeps more room than needed, and the room kept never
 * exceeds a rewrite of every page in use (see `anchorRewritePages`).
 */
export class UnanchoredTally {
  readonly #readLeft: () => UnanchoredRows;
  #count: number | undefined;
  #bytes = 0;

  /**
   * `readLeft` counts the rows an earlier process left unanchored. It runs when the tally is first
   * needed, not at open: opening never reads the tables, so a damaged page is found (and named) by
   * the replay. If it fails, the rows are taken as uncounted; the replay reports why.
   */
  constructor(readLeft: () => UnanchoredRows) {
    this.#readLeft = readLeft;
  }

  get rows(): UnanchoredRows {
    return { count: this.#counted(), bytes: this.#bytes };
  }

  /** The tally as it would be once `writes` commit too. */
  with(writes: ReadonlyArray<PendingWrite | PendingItem>): UnanchoredRows {
    let count = this.#counted();
    let bytes = this.#bytes;
    for (const w of writes) {
      if (!w.unanchored) continue;
      count++;
      bytes += rowByteLength(w);
    }
    return { count, bytes };
  }

  /** Writes committed: `after` is the tally `with` gave for them. */
  committed(after: UnanchoredRows): void {
    this.#count = after.count;
    this.#bytes = after.bytes;
  }

  /** The anchoring step recorded every row anchored. */
  anchored(): void {
    this.#count = 0;
    this.#bytes = 0;
  }

  #counted(): number {
    if (this.#count !== undefined) return this.#count;
    let left: UnanchoredRows;
    try {
      left = this.#readLeft();
    } catch {
      left = UNCOUNTED;
    }
    this.#count = left.count;
    this.#bytes = left.bytes;
    return left.count;
  }
}
