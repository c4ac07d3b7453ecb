import { performance } from 'node:perf_hooks';
import { LOGICAL_SLOTS } from '../../storage/contract/version.js';

/** The latest wall-clock reading a version can carry and stay a safe integer (the year 2248). */
export const MAX_WALL_MS = Math.floor(Number.MAX_SAFE_INTEGER / LOGICAL_SLOTS) - 1;

/** Where the clock reads time: the wall clock, and a monotonic clock that no one can set. */
export interface ClockReadings {
  wallMs(): number;
  monotonicMs(): number;
}

const SYSTEM_READINGS: ClockReadings = {
  wallMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};

/** A wall-clock reading not trusted, with the time used instead. */
export interface DistrustedReading {
  readingMs: number;
  trustedMs: number;
}

export interface WallClockOptions {
  /** How far a reading may run ahead of both the time since the last trusted one and the store's newest version. */
  maxAheadMs: number;
  /** The first reading of an episode was not trusted (called once until a reading is trusted again). */
  onDistrust?: (reading: DistrustedReading) => void;
  /** A reading is trusted again after an episode. */
  onTrusted?: (readingMs: number) => void;
  readings?: ClockReadings;
}

/**
 * The wall clock as versions may use it. A reading is trusted unless it is implausibly far ahead:
 * more than `maxAheadMs` beyond both the last trusted reading plus the monotonic time elapsed since
 * (a bad RTC, a VM resumed with a wrong clock, an NTP step) and the newest version seen from the
 * store (other instances' clocks). A reading the versions could not carry as safe integers is
 * never trusted. In its place the clock gives the last trusted reading advanced by monotonic time,
 * so versions keep tracking real time while the wall clock is wrong, and no single bad reading can
 * carry every later write (and through the store's mark, every other instance) into the future.
 */
export class WallClock {
  readonly #maxAheadMs: number;
  readonly #onDistrust: (reading: DistrustedReading) => void;
  readonly #onTrusted: (readingMs: number) => void;
  readonly #readings: ClockReadings;
  #base: { wallMs: number; monotonicMs: number } | undefined;
  /** The newest time the store's versions show (other instances' clocks). */
  #storeMs = 0;
  /** How far the last reading ran ahead of the time used instead; 0 while readings are trusted. */
  #aheadMs = 0;
  #distrusted = 0;

  constructor(options: WallClockOptions) {
    this.#maxAheadMs = options.maxAheadMs;
    this.#onDistrust = options.onDistrust ?? (() => {});
    this.#onTrusted = options.onTrusted ?? (() => {});
    this.#readings = options.readings ?? SYSTEM_READINGS;
  }

  /** How far the current wall clock runs ahead of the time versions use; 0 while it is trusted. */
  get aheadMs(): number {
    return this.#aheadMs;
  }

  /** Readings not trusted so far. */
  get distrustedReadings(): number {
    return this.#distrusted;
  }

  /** A version seen from the store: its time shows how far other instances' clocks have got. */
  observeStoreTime(ms: number): void {
    if (ms > this.#storeMs && ms <= MAX_WALL_MS) this.#storeMs = ms;
  }

  /** The time, in epoch milliseconds, a new version may carry. */
  now(): number {
    const readingMs = this.#readings.wallMs();
    const monotonicMs = this.#readings.monotonicMs();
    const base = this.#base;
    const expectedMs = base ? Math.floor(base.wallMs + (monotonicMs - base.monotonicMs)) : undefined;
    const plausible =
      readingMs <= MAX_WALL_MS &&
      (expectedMs === undefined ||
        readingMs <= expectedMs + this.#maxAheadMs ||
        readingMs <= this.#storeMs + this.#maxAheadMs);
    if (plausible) {
      this.#base = { wallMs: readingMs, monotonicMs };
      if (this.#aheadMs > 0) {
        this.#aheadMs = 0;
        this.#onTrusted(readingMs);
      }
      return readingMs;
    }
    // Not trusted: the last trusted reading moved on by monotonic time, or with none yet, the store's.
    const trustedMs = Math.min(expectedMs ?? this.#storeMs, MAX_WALL_MS);
    this.#distrusted++;
    const firstOfEpisode = this.#aheadMs === 0;
    this.#aheadMs = Math.max(1, readingMs - trustedMs);
    if (firstOfEpisode) this.#onDistrust({ readingMs, trustedMs });
    return trustedMs;
  }
}
