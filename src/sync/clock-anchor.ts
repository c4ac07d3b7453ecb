import type { HybridLogicalClock } from './hlc.js';

/**
 * Ties the clock to the store's version high-water mark.
 *
 * Until the mark has been read the clock is unanchored: with its wall clock behind, durability
 * `none` or a fresh outbox, a process may mint versions below ones the store already holds, and
 * such writes would lose to older ones when flushed. Opening never waits for the store (the cache
 * works offline), so writes accepted before the mark is known are remembered here by version, and
 * the flusher gives each a new version, minted once the clock is anchored, before it is sent.
 */
export class ClockAnchor {
  readonly #clock: HybridLogicalClock;
  readonly #readMark: (signal?: AbortSignal) => Promise<number>;
  #mark: number | undefined;
  #reading: Promise<void> | undefined;
  /** Versions minted (or replayed) unanchored and never sent: each is re-minted before it is sent. */
  readonly #unanchored = new Set<number>();
  /** Unanchored writes still on their way into the outbox. */
  #appending = 0;
  #onAppendsDone: Array<() => void> = [];

  constructor(clock: HybridLogicalClock, readMark: (signal?: AbortSignal) => Promise<number>) {
    this.#clock = clock;
    this.#readMark = readMark;
  }

  get anchored(): boolean {
    return this.#mark !== undefined;
  }

  /** Resolves once the clock has observed the store's mark; concurrent callers share one read. */
  ensure(signal?: AbortSignal): Promise<void> {
    if (this.#mark !== undefined) return Promise.resolve();
    this.#reading ??= this.#readMark(signal)
      .then((mark) => {
        this.#clock.observe(mark);
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
    return true;
  }

  /** A write left by an earlier process that never reached the store with an anchored version. */
  replayedUnanchored(version: number): void {
    this.#unanchored.add(version);
  }

  /** The write with this version will never be sent (replaced, refused, or re-minted). */
  forget(version: number): void {
    this.#unanchored.delete(version);
  }

  needsRemint(version: number): boolean {
    return this.#unanchored.has(version);
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
