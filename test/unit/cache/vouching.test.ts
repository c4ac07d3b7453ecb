import { describe, expect, it, vi } from 'vitest';
import { MISS } from '../../../src/cache/memory-tier.js';
import { Vouching } from '../../../src/cache/vouching.js';
import type { FeedFollower } from '../../../src/sync/feed/follower.js';

const counters = () => ({ revalidations: 0, possiblyStaleReads: 0 });
const followerThat = (vouched: boolean, caughtUp: boolean) =>
  ({ vouched, catchUp: vi.fn(async () => caughtUp) }) as unknown as FeedFollower;

describe('Vouching', () => {
  it('vouches for everything without a follower, and a revalidation then reads no feed', async () => {
    const count = counters();
    const vouching = new Vouching(undefined, count);
    expect(vouching.vouched).toBe(true);
    expect(
      await vouching.revalidate(
        () => 'memory',
        async () => 'store',
      ),
    ).toBe('memory');
    expect(count).toEqual({ revalidations: 1, possiblyStaleReads: 0 });
  });

  it("follows the follower's vouch", () => {
    expect(new Vouching(followerThat(true, true), counters()).vouched).toBe(true);
    expect(new Vouching(followerThat(false, true), counters()).vouched).toBe(false);
  });

  it('answers from memory after a catch-up, or from the store when the catch-up dropped the entry', async () => {
    const count = counters();
    const follower = followerThat(false, true);
    const vouching = new Vouching(follower, count);
    expect(
      await vouching.revalidate(
        () => 'memory',
        async () => 'store',
      ),
    ).toBe('memory');
    expect(
      await vouching.revalidate(
        () => MISS,
        async () => 'store',
      ),
    ).toBe('store');
    expect(follower.catchUp).toHaveBeenCalledTimes(2);
    expect(count).toEqual({ revalidations: 2, possiblyStaleReads: 0 });
  });

  it('answers from memory when the feed cannot be read, counting the read possibly stale', async () => {
    const count = counters();
    const vouching = new Vouching(followerThat(false, false), count);
    expect(
      await vouching.revalidate(
        () => undefined,
        async () => 'store',
      ),
    ).toBeUndefined();
    expect(count).toEqual({ revalidations: 1, possiblyStaleReads: 1 });
  });
});
