import type { HybridLogicalClock } from './hlc.js';

/**
 * Ties the clock to the store's version high-water mark.
 *
 * Until the mark has been read the clock is unanchored: with its wall clock behind, durability
 * `none` or a fresh outbox, a process may mint versions below ones the store already holds, and
 * such writes would lose to older ones when flushed. Opening never waits for the store (the cache
 * works offline), so writes accepted before the mark is known are remembered here by version, and
 * the flusher gives each a new version before it is sent.
 *
 * The new versions are all minted the moment the mark arrives, in the order of the old ones and
 * before any write minted after it, and recorded in the outbox: a write accepted before the anchor
 * keeps its place before every write accepted after it (an item appended before the anchor still
 * sorts before one appended after), however long its re-mint waits, and across a crash.
 */
export class ClockAnchor {
  readonly #clock: HybridLogicalClock;
  readonly #readMark: (signal?: AbortSignal) => Promise<number>;
  readonly #record: (reserved: ReadonlyArray<[from: number, to: number]>) => void;
  #mark: number | undefined;
  #reading: Promise<void> | undefined;
  /** Versions minted (or replayed) unanchored and never sent: each is re-minted before it is sent. */
  readonly #unanchored = new Set<number>();
  /** Versions minted (or replayed) unanchored that have no new version reserved yet, sent or not. */
  readonly #unreserved = new Set<number>();
  /** Old and new versions of the writes accepted before an anchor, by old version (ascending). */
  #remap: Array<[from: number, to: number]> = [];
  /** Unanchored writes still on their way into the outbox. */
  #appending = 0;
  #onAppendsDone: Array<() => void> = [];

  /**
   * `record` keeps the versions reserved at the anchor (in the outbox) before anything minted after
   * it can be: a process that restarts before re-minting a write still gives it the version reserved
   * for it, below the writes that followed it. It may throw; the anchor is then tried again later.
   */
  constructor(
    clock: HybridLogicalClock,
    readMark: (signal?: AbortSignal) => Promise<number>,
    record: (reserved: ReadonlyArray<[from: number, to: number]>) => void = () => {},
  ) {
    this.#clock = clock;
    this.#readMark = readMark;
    this.#record = record;
  }

  get anchored(): boolean {
    return this.#mark !== undefined;
  }

  /** Versions an earlier process reserved and recorded: its writes left unanchored keep them. */
  restoreReserved(reserved: ReadonlyArray<readonly [number, number]>): void {
    for (const [from, to] of reserved) {
      this.#clock.observe(to);
      this.#remap.push([from, to]);
    }
    this.#remap.sort((a, b) => a[0] - b[0]);
  }

  /** Resolves once the clock has observed the store's mark; concurrent callers share one read. */
  ensure(signal?: AbortSignal): Promise<void> {
    if (this.#mark !== undefined) return Promise.resolve();
    this.#reading ??= this.#readMark(signal)
      .then((mark) => {
        this.#clock.observe(mark);
        const olds = [...this.#unreserved].filter((from) => !this.#hasReserved(from)).sort((a, b) => a - b);
        const reserved = olds.map((from): [number, number] => [from, this.#clock.next()]);
        if (reserved.length > 0) this.#record(reserved);
        this.#unreserved.clear();
        this.#remap = [...this.#remap, ...reserved].sort((a, b) => a[0] - b[0]);
        this.#mark = mark;
      })
      .finally(() => {
        this.#reading = undefined;
      });
    return this.#reading;
  }

  /** A write was just minted; returns true if it was minted unanchored (and must be re-minted). */
  minted(version: number): boolean {
    if (this.#mark !== undefined) return false;
    this.#unanchored.add(version);
    this.#unreserved.add(version);
    return true;
  }

  /** A write left by an earlier process that never reached the store with an anchored version. */
  replayedUnanchored(version: number): void {
    this.#unanchored.add(version);
    if (!this.#hasReserved(version)) this.#unreserved.add(version);
  }

  /** The write with this version will never be sent (replaced, dropped, or re-minted). */
  forget(version: number): void {
    this.#unanchored.delete(version);
  }

  /**
   * The write with this version was refused (the outbox could not record it): nothing holds or reads
   * it, so it needs no reserved version. Reserving one anyway would be a write to the outbox at the
   * anchor, which on the full disk that refused it fails, and with it every flush.
   */
  refused(version: number): void {
    this.#unanchored.delete(version);
    this.#unreserved.delete(version);
  }

  needsRemint(version: number): boolean {
    return this.#unanchored.has(version);
  }

  /** The new version of a write accepted before the anchor (`needsRemint`), once anchored. */
  remintedVersion(from: number): number {
    const to = this.#remap[this.#firstAbove(from - 1)];
    if (to?.[0] !== from) throw new Error(`no new version was reserved for version ${from}`);
    return to[1];
  }

  /**
   * Where the end of a key's older items (a value's `endsLogAt`) lies in the new versions. An end is
   * always set just below the write that started the key's new log; when that write was accepted
   * before an anchor, the end moves to just below its new version. Any other end (one written after
   * the anchor) is kept.
   */
  remapEnd(endsLogAt: number): number {
    const next = this.#remap[this.#firstAbove(endsLogAt)];
    return next !== undefined && next[0] === endsLogAt + 1 ? next[1] - 1 : endsLogAt;
  }

  /**
   * The end as it will reach the store, for reading the key's stored items meanwhile: `remapEnd`,
   * or every stored item for an end below a write whose new version is not reserved yet (it will be
   * above everything the store holds now).
   */
  effectiveEnd(endsLogAt: number): number {
    return this.#unreserved.has(endsLogAt + 1) ? Number.POSITIVE_INFINITY : this.remapEnd(endsLogAt);
  }

  #hasReserved(from: number): boolean {
    return this.#remap[this.#firstAbove(from - 1)]?.[0] === from;
  }

  /** Index of the first old version above `version`. */
  #firstAbove(version: number): number {
    let low = 0;
    let high = this.#remap.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.#remap[mid] as [number, number])[0] > version) high = mid;
      else low = mid + 1;
    }
    return low;
  }

  appendStarted(): void {
    this.#appending++;
  }

  appendSettled(): void {
    if (--this.#appending > 0 || this.#onAppendsDone.length === 0) return;
    const waiting = this.#onAppendsDone;
    this.#onAppendsDone = [];
    for (const resolve of waiting) resolve();
  }

  /**
   * Resolves when no write is still being appended. Re-minting a key's dirty write while a newer
   * write to it is in flight (unanchored, or minted after the anchor but before the re-mint) would
   * give the older value the higher version, and the outbox and memory would then refuse the newer
   * one: an acknowledged write lost.
   */
  appendsSettled(): Promise<void> {
    if (this.#appending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#onAppendsDone.push(resolve));
  }
}
