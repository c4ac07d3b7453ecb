/**
 * Whether the clock has observed the store's version high-water mark, and which pending writes
 * were minted before it did.
 *
 * Opening never waits for the store, so a process whose wall clock is behind (or whose outbox is
 * new) may mint versions below ones the store already holds. Such writes are _unanchored_: nothing
 * is sent before the mark is read, and then one step (see `WritePipeline.anchorAt`) gives all of
 * them new versions above it at once. Unanchored writes are always the newest pending ones: a
 * process mints above every version its outbox holds, and the step leaves no unanchored row
 * behind. So one number, the newest version known to be anchored, tells them apart.
 */
export class ClockAnchor {
  readonly #readMark: (signal?: AbortSignal) => Promise<number>;
  readonly #step: (mark: number) => Promise<void>;
  #anchored = false;
  /** Pending writes at or below this version were anchored when written (replayed from an earlier process). */
  #anchoredUpTo = 0;
  #reading: Promise<void> | undefined;

  /** `step` gives the unanchored writes their new versions and calls `anchoredNow` when done; it may reject (retried later). */
  constructor(readMark: (signal?: AbortSignal) => Promise<number>, step: (mark: number) => Promise<void>) {
    this.#readMark = readMark;
    this.#step = step;
  }

  get anchored(): boolean {
    return this.#anchored;
  }

  /** A replayed write an earlier process had already anchored: it keeps its version. */
  replayedAnchored(version: number): void {
    if (version > this.#anchoredUpTo) this.#anchoredUpTo = version;
  }

  /** True for a pending write (or log floor's write) that must be given a new version before it is sent. */
  isUnanchored(version: number): boolean {
    return !this.#anchored && version > this.#anchoredUpTo;
  }

  /** Called by the step, in the same turn as its last change: writes minted from now on are anchored. */
  anchoredNow(): void {
    this.#anchored = true;
  }

  /**
   * A value's log floor as the store will see it, for reading the key's stored items meanwhile: a
   * floor set by an unanchored write will end up above everything the store holds now.
   */
  effectiveFloor(logFloor: number): number {
    return this.isUnanchored(logFloor + 1) ? Number.POSITIVE_INFINITY : logFloor;
  }

  /** Resolves once the clock is anchored; concurrent callers share one read of the mark and one step. */
  ensure(signal?: AbortSignal): Promise<void> {
    if (this.#anchored) return Promise.resolve();
    this.#reading ??= this.#readMark(signal)
      .then((mark) => this.#step(mark))
      .finally(() => {
        this.#reading = undefined;
      });
    return this.#reading;
  }
}
