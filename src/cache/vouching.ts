import type { FeedFollower } from '../sync/feed/follower.js';
import { MISS } from './memory-tier.js';

/** What a revalidated read counts. */
export interface VouchingCounters {
  revalidations: number;
  possiblyStaleReads: number;
}

/**
 * Whether memory may answer for a clean entry: always when the cache follows no feed (it is the
 * store's only user, or was told so); otherwise while the follower vouches for it. Past that, a
 * read first brings the follower to the feed's end (one read of the feed for every waiting reader,
 * not a read of each key), then answers from memory, or from the store if the entry was dropped.
 * With the store unreachable, memory answers anyway and the read is counted as possibly stale.
 */
export class Vouching {
  readonly #follower: FeedFollower | undefined;
  readonly #counters: VouchingCounters;

  constructor(follower: FeedFollower | undefined, counters: VouchingCounters) {
    this.#follower = follower;
    this.#counters = counters;
  }

  get vouched(): boolean {
    return this.#follower?.vouched ?? true;
  }

  async revalidate<T>(lookup: () => T | typeof MISS, load: () => Promise<T>): Promise<T> {
    this.#counters.revalidations++;
    const caughtUp = (await this.#follower?.catchUp()) ?? true;
    if (!caughtUp) this.#counters.possiblyStaleReads++;
    const found = lookup();
    return found === MISS ? load() : found;
  }
}
