import { LOGICAL_SLOTS } from '../storage/version.js';

/**
 * Hybrid logical clock: strictly increasing within the process, never behind the wall clock,
 * and always ahead of any version observed from the store.
 */
export class HybridLogicalClock {
  #last = 0;

  /** The newest version minted or observed so far. */
  get last(): number {
    return this.#last;
  }

  next(): number {
    this.#last = Math.max(this.#last + 1, Date.now() * LOGICAL_SLOTS);
    return this.#last;
  }

  observe(version: number): void {
    if (version > this.#last) this.#last = version;
  }
}
