import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../../../src/cache/options.js';
import { type HybridCacheOptions, MemoryStorage, ValidationError } from '../../../src/index.js';
import { silentLogger } from '../../helpers/cache.js';

const resolve = (options: Partial<HybridCacheOptions>) =>
  resolveOptions({
    storage: new MemoryStorage(),
    outbox: { durability: 'none' },
    logger: silentLogger,
    ...options,
  } as HybridCacheOptions);

function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as Error).message;
  }
  throw new Error('expected a ValidationError');
}

describe('maxStalenessMs against the feed poll interval', () => {
  it('refuses a bound no longer than the poll interval, naming both values', () => {
    for (const maxStalenessMs of [100, 99]) {
      expect(messageOf(() => resolve({ maxStalenessMs, feed: { pollIntervalMs: 100 } }))).toBe(
        `maxStalenessMs (${maxStalenessMs}) must be greater than feed.pollIntervalMs (100), or every read between two polls would ask the store`,
      );
    }
  });

  it('takes a bound one millisecond past the poll interval', () => {
    const resolved = resolve({ maxStalenessMs: 101, feed: { pollIntervalMs: 100 } });
    expect(resolved.maxStalenessMs).toBe(101);
    expect(resolved.feed).toMatchObject({ pollIntervalMs: 100 });
  });

  it('does not compare the bound with a poll interval when the feed is off', () => {
    expect(resolve({ maxStalenessMs: 1, feed: false }).maxStalenessMs).toBe(1);
  });
});

describe('unknown option messages', () => {
  it('lists every top-level option for a name close to none of them', () => {
    const message = messageOf(() => resolve({ qqqqqq: 1 } as Partial<HybridCacheOptions>));
    expect(message).toMatch(/^unknown option qqqqqq; valid options: storage, logger, maxEntries, /);
    expect(message).not.toContain(' in ');
  });

  it("lists the feed's options for an unknown name inside it, and suggests a close one", () => {
    expect(messageOf(() => resolve({ feed: { zzzz: 5 } } as Partial<HybridCacheOptions>))).toBe(
      'unknown option feed.zzzz; valid options in feed: pollIntervalMs, pageSize',
    );
    expect(messageOf(() => resolve({ feed: { pollIntervalMS: 5 } } as Partial<HybridCacheOptions>))).toBe(
      'unknown option feed.pollIntervalMS (did you mean feed.pollIntervalMs?)',
    );
  });
});
