import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HybridCache } from '../../../src/cache/hybrid-cache.js';
import { resolveOptions } from '../../../src/cache/options.js';
import { MemoryStorage, type StorageCallOptions } from '../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../src/storage/contract/version.js';
import type { Outbox, PendingItem, PendingWrite, VersionChange } from '../../../src/sync/outbox/outbox.js';
import { settleWithTimers, silentLogger, storedValue } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A store whose version high-water mark is answered only once `answerMark()` is called. */
class SlowMark extends MemoryStorage {
  #answer: () => void = () => {};
  readonly #answered = new Promise<void>((resolve) => (this.#answer = resolve));

  answerMark(): void {
    this.#answer();
  }

  override async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    await this.#answered;
    return super.highWaterMark(opts);
  }
}

interface HeldAppend {
  write: PendingWrite | PendingItem;
  resolve: () => void;
}

/**
 * A durable outbox kept in memory: it can refuse appends (as a full disk does), or hold them until the
 * test lets each one finish; it records what each anchoring transaction was given.
 */
class ScriptedOutbox implements Outbox {
  readonly durable = true;
  readonly failure = undefined;
  readonly lost = false;
  refusal: Error | undefined;
  holding = false;
  readonly held: HeldAppend[] = [];
  readonly anchors: Array<{ changes: VersionChange[]; anchoredThrough: number }> = [];

  append(write: PendingWrite | PendingItem): Promise<void> {
    if (this.refusal) return Promise.reject(this.refusal);
    if (!this.holding) return Promise.resolve();
    return new Promise((resolve) => this.held.push({ write, resolve }));
  }

  anchor(changes: readonly VersionChange[], anchoredThrough: number): void {
    this.anchors.push({ changes: [...changes], anchoredThrough });
  }

  pending(): PendingWrite[] {
    return [];
  }
  pendingItems(): PendingItem[] {
    return [];
  }
  quarantineDamaged() {
    return [];
  }
  highestVersion(): number {
    return 0;
  }
  reservedVersions(): Array<[number, number]> {
    return [];
  }
  acknowledge(): void {}
  deadLetter(): void {}
  deadLetters() {
    return [];
  }
  requeueDeadLetters() {
    return [];
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A cache over that outbox, opened while the store has not yet said what its high-water mark is. */
function unanchoredCache() {
  const storage = new SlowMark();
  const outbox = new ScriptedOutbox();
  const cache = new HybridCache<unknown>(
    resolveOptions({
      storage,
      outbox: { durability: 'none' },
      flush: { batchSize: 50, intervalMs: 10, concurrency: 2 },
      retry: { baseMs: 50, maxMs: 1_000 },
      logger: silentLogger,
    }),
    outbox,
  );
  cache.replayOutbox();
  cache.anchorClock();
  return { cache, storage, outbox };
}

const refusal = new Error('database or disk is full (injected)');

/** A version an hour ahead of this process's clock, as another instance would have written. */
const aheadOfUs = () => (Date.now() + 3_600_000) * LOGICAL_SLOTS;

describe('a write the outbox refuses before the clock is anchored', () => {
  it.each([
    ['append', 'log', (cache: HybridCache<unknown>) => cache.append('log', 'line')],
    ['set', 'k', (cache: HybridCache<unknown>) => cache.set('k', 'v')],
  ])(
    '%s: rejects with the outbox error, gets no new version at the anchor, and later writes still flush',
    async (_, refusedKey, write) => {
      const { cache, storage, outbox } = unanchoredCache();
      // The store is ahead of this clock, so the writes accepted before the anchor get new versions.
      const mark = aheadOfUs();
      await storage.apply([{ key: 'elsewhere', version: mark, json: '"theirs"', expiresAt: null }]);
      await cache.set('kept', 'before');
      outbox.refusal = refusal;
      await expect(write(cache)).rejects.toBe(refusal);
      outbox.refusal = undefined;
      storage.answerMark();
      await vi.advanceTimersByTimeAsync(0);
      // One anchoring transaction, for the accepted write only.
      expect(outbox.anchors).toHaveLength(1);
      const changes = outbox.anchors[0]?.changes ?? [];
      expect(changes).toEqual([{ key: 'kept', from: expect.any(Number), to: expect.any(Number) }]);
      expect(changes[0]?.to).toBeGreaterThan(mark);
      expect(changes.some((c) => c.key === refusedKey)).toBe(false);

      await cache.set('after', 'accepted');
      await settleWithTimers(cache.flush({ timeoutMs: 1_000 }));
      expect(storedValue(storage, 'after')).toBe('accepted');
      expect(storedValue(storage, 'kept')).toBe('before');
      expect(storage.peek('kept')?.version).toBe(changes[0]?.to);
      expect(storedValue(storage, refusedKey)).toBeUndefined();
      expect(cache.stats()).toMatchObject({ pending: 0, pendingBytes: 0 });
      expect(await settleWithTimers(cache.close({ timeoutMs: 1_000 }))).toMatchObject({ drained: true });
    },
  );
});

describe('two writes to a key whose outbox appends finish newest first, before the clock is anchored', () => {
  it('the older is dropped; the newer gets a version above the store’s and replaces its value', async () => {
    const { cache, storage, outbox } = unanchoredCache();
    // Another instance, its clock an hour ahead, wrote the key: the store's mark is above this clock.
    await storage.apply([
      { key: 'k', version: (Date.now() + 3_600_000) * LOGICAL_SLOTS, json: '"theirs"', expiresAt: null },
    ]);
    outbox.holding = true;
    const first = cache.set('k', 'older');
    const second = cache.set('k', 'newer');
    const [older, newer] = outbox.held;
    newer?.resolve();
    await second;
    older?.resolve();
    await first;
    storage.answerMark();
    await settleWithTimers(cache.flush({ timeoutMs: 1_000 }));
    // Memory held only the newer write when the clock was anchored: it alone got a new version.
    expect(outbox.anchors.map((a) => a.changes.map((c) => c.key))).toEqual([['k']]);
    expect(storedValue(storage, 'k')).toBe('newer');
    expect(cache.stats()).toMatchObject({ pending: 0, superseded: 0 });
    expect(await settleWithTimers(cache.get('k'))).toBe('newer');
    await settleWithTimers(cache.close({ timeoutMs: 1_000 }));
  });
});
