import { LOGICAL_SLOTS, versionTimeMs } from '../../storage/contract/version.js';
import { ClockError } from '../errors.js';
import type { WallClock } from './wall-clock.js';

/**
 * Hybrid logical clock: strictly increasing within the process, never behind the (trusted) wall
 * clock, always ahead of any version observed from the store, and always a safe integer.
 */
export class HybridLogicalClock {
  readonly #wall: Pick<WallClock, 'now' | 'observeStoreTime'> | undefined;
  #last = 0;

  /** Without a `WallClock`, every `Date.now()` reading is taken as it is. */
  constructor(wall?: Pick<WallClock, 'now' | 'observeStoreTime'>) {
    this.#wall = wall;
  }

  /** The newest version minted or observed so far. */
  get last(): number {
    return this.#last;
  }

  /** Throws `ClockError` rather than mint a version that is not a safe integer (nothing could order it). */
  next(): number {
    const wallMs = this.#wall ? this.#wall.now() : Date.now();
    const next = Math.max(this.#last + 1, wallMs * LOGICAL_SLOTS);
    if (!Number.isSafeInteger(next)) {
      throw new ClockError(
        `cannot mint a version above ${this.#last}: versions past 2^53 would no longer order writes (wall clock ${new Date(wallMs).toISOString()})`,
      );
    }
    this.#last = next;
    return next;
  }

  /** A version seen from the store or the outbox; one that is not a safe integer is ignored. */
  observe(version: number): void {
    if (!Number.isSafeInteger(version)) return;
    if (version > this.#last) this.#last = version;
    this.#wall?.observeStoreTime(versionTimeMs(version));
  }
}
