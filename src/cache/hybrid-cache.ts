import { MemoryOutbox, type Outbox } from '../sync/outbox/outbox.js';
import { type CacheParts, composeCache, feedStats, withDeadline } from './compose.js';
import { entryBytes } from './entry.js';
import { ClosedError, FlushTimeoutError } from './errors.js';
import { MISS } from './memory-tier.js';
import type { ResolvedOptions } from './options.js';
import { replayOutbox } from './recovery.js';
import type {
  CacheEvents,
  CacheStats,
  CloseOptions,
  CloseResult,
  DeadLetter,
  FlushOptions,
  Health,
  SetOptions,
  SetValueOptions,
  ValueAndItems,
} from './types.js';
import { expiryFor, serializeValue, validateKey, validateTtl } from './validation.js';

/**
 * @internal Stops a cache as a crash would: no drain, no further store calls, in-flight calls
 * aborted, outbox closed as it stands. Used by tests to restart over the same files in one process.
 */
export const ABANDON: unique symbol = Symbol('hybrid-cache.abandon');

type State = 'open' | 'closing' | 'closed';

/**
 * A write-behind cache: reads from memory, writes acknowledged once in memory and the outbox,
 * flushed to the store in the background. Build one with `createHybridCache`.
 */
export class HybridCache<V = unknown> {
  readonly #parts: CacheParts;
  // The parts a read hit touches, held directly: a hit is a few tens of nanoseconds.
  readonly #tier: CacheParts['tier'];
  readonly #counters: CacheParts['counters'];
  readonly #vouching: CacheParts['vouching'];
  readonly #maxValueBytes: number;
  readonly #defaultTtlMs: number;
  #state: State = 'open';

  /** @internal Use `createHybridCache`. */
  constructor(options: ResolvedOptions, outbox: Outbox = new MemoryOutbox()) {
    this.#parts = composeCache(options, outbox);
    this.#tier = this.#parts.tier;
    this.#counters = this.#parts.counters;
    this.#vouching = this.#parts.vouching;
    this.#maxValueBytes = options.maxValueBytes;
    this.#defaultTtlMs = options.defaultTtlMs;
  }

  /** @internal Called by `createHybridCache`: puts writes (values and appended items) left in the outbox by an earlier process back in memory and starts flushing them; returns how many keys had some. */
  replayOutbox(): number {
    const parts = this.#parts;
    return replayOutbox({ ...parts, onDamaged: (count) => (parts.counters.deadLetters += count) });
  }

  /** @internal Called by `createHybridCache`: starts reading the store's version high-water mark; writes need not wait for it. */
  anchorClock(): void {
    this.#parts.flusher.anchorClock();
  }

  /** @internal Called by `createHybridCache`: starts following the store's change feed, unless turned off or the store has none. */
  followFeed(): void {
    this.#parts.follower?.start();
  }

  /** The value, or `undefined` if absent, deleted or expired. Rejects with `StorageUnavailableError` on a miss the store cannot answer. */
  async get(key: string): Promise<V | undefined> {
    if (this.#state === 'closed') throw new ClosedError();
    // Memory holds only keys a write or a read already validated, so only a miss checks the key.
    const found = this.#tier.lookup(key);
    if (found !== MISS) {
      this.#counters.hits++;
      if (this.#vouching.vouched || this.#tier.dirty.has(key)) return found as V | undefined;
      const tier = this.#tier;
      return this.#vouching.revalidate(
        () => tier.lookup(key),
        () => this.#parts.reads.value(key),
      ) as Promise<V | undefined>;
    }
    validateKey(key);
    this.#counters.misses++;
    return this.#parts.reads.value(key) as Promise<V | undefined>;
  }

  /**
   * The value with the items appended to the key (its append-only log) in their one order, the same
   * for every reader: by the version each append was given, then its id. Local items not yet
   * flushed are included. `undefined` when the key is absent, deleted or expired (its items go with it).
   */
  async getWithItems(key: string): Promise<ValueAndItems<V> | undefined> {
    if (this.#state === 'closed') throw new ClosedError();
    const tier = this.#tier;
    const found = tier.lookupWithLog(key);
    if (found !== MISS) {
      this.#counters.hits++;
      if (this.#vouching.vouched || tier.dirty.has(key))
        return found && { value: found.value as V, items: found.items };
      return this.#vouching.revalidate(
        () => {
          const again = tier.lookupWithLog(key);
          return again === MISS ? MISS : again && { value: again.value as V, items: again.items };
        },
        () => this.#parts.reads.valueWithItems(key) as Promise<ValueAndItems<V> | undefined>,
      );
    }
    validateKey(key);
    this.#counters.misses++;
    return this.#parts.reads.valueWithItems(key) as Promise<ValueAndItems<V> | undefined>;
  }

  /**
   * Appends an item to the key's log: O(item) in memory, outbox and store, never a rewrite of the
   * log. Resolves once it is in memory and (per durability) in the outbox. Like `set`, it gives the
   * key the TTL `ttlMs` (or the default), but only ever lengthens its life. Items of a key are read
   * with its value (`getWithItems`) and go with it when it is deleted or expires.
   */
  append(key: string, item: unknown, options?: SetOptions): Promise<void> {
    try {
      this.#assertWritable();
      validateKey(key);
      const ttlMs = options?.ttlMs === undefined ? this.#defaultTtlMs : validateTtl(options.ttlMs);
      const expiresAt = expiryFor(ttlMs, Date.now());
      const json = serializeValue(item, this.#maxValueBytes);
      return this.#parts.pipeline.appendItem(key, json, expiresAt);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Stores a value. Resolves once it is in memory and (per durability) in the outbox; the store is updated later. */
  set(key: string, value: V, options?: SetValueOptions): Promise<void> {
    try {
      this.#assertWritable();
      validateKey(key);
      const ttlMs = options?.ttlMs === undefined ? this.#defaultTtlMs : validateTtl(options.ttlMs);
      const expiresAt = expiryFor(ttlMs, Date.now());
      const json = serializeValue(value, this.#maxValueBytes);
      const bytes = entryBytes(key, json.length);
      return this.#parts.pipeline.writeValue(key, json, expiresAt, bytes, options?.newKey ? [] : undefined);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Deletes a key with a versioned tombstone, so an older write arriving late cannot bring it back. */
  delete(key: string): Promise<void> {
    try {
      this.#assertWritable();
      validateKey(key);
      return this.#parts.pipeline.writeValue(key, null, null, entryBytes(key, 0));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Resolves when every write acknowledged before the call is in the store (or dead-lettered). */
  async flush(options: FlushOptions = {}): Promise<void> {
    if (this.#state === 'closed') throw new ClosedError();
    const { tier, flusher } = this.#parts;
    const versions = new Map<string, number>();
    for (const [key, entry] of tier.dirty) versions.set(key, entry.version);
    for (const [key, log] of tier.pendingLogs) {
      const newest = log.items[log.items.length - 1]?.version ?? 0;
      versions.set(key, Math.max(versions.get(key) ?? 0, newest));
    }
    const { done, cancel } = flusher.waitFor(versions);
    if (options.timeoutMs === undefined) return done;
    await withDeadline(done, options.timeoutMs, cancel, () => new FlushTimeoutError(this.#pendingCount()));
  }

  /** Stops accepting writes, drains until the deadline, then closes the outbox. What is left stays there. */
  async close(options: CloseOptions = {}): Promise<CloseResult> {
    if (this.#state !== 'open') throw new ClosedError('close() was already called');
    this.#state = 'closing';
    const { pipeline, guard, flusher, outbox, logger } = this.#parts;
    // Writes accepted just before close() are still on their way into the outbox: include them.
    await pipeline.close();
    let drained = true;
    try {
      await this.flush({ timeoutMs: options.timeoutMs ?? 5_000 });
    } catch {
      drained = false;
    }
    this.#parts.follower?.stop();
    guard.stop();
    await flusher.stop();
    const pending = this.#pendingCount();
    this.#state = 'closed';
    await outbox.close();
    if (pending > 0) {
      logger.warn(
        { pending, durable: outbox.durable, outboxLost: outbox.lost },
        !outbox.durable
          ? 'closed with unflushed writes and no outbox; they are lost'
          : outbox.lost
            ? 'closed with unflushed writes, and the outbox file was deleted or replaced while open; they are lost'
            : 'closed with unflushed writes; they stay in the outbox and flush on next start',
      );
    }
    return { pending, drained };
  }

  /** @internal */
  async [ABANDON](): Promise<void> {
    this.#state = 'closed';
    this.#parts.follower?.stop();
    this.#parts.guard.stop();
    await this.#parts.flusher.stop();
    await this.#parts.outbox.close();
  }

  stats(): CacheStats {
    const { tier, counters, flusher, guard, outbox, anchor, wall } = this.#parts;
    const oldestValue = tier.dirty.values().next().value?.since;
    const oldestItems = tier.pendingLogs.values().next().value?.since;
    const oldest = Math.min(oldestValue ?? Number.POSITIVE_INFINITY, oldestItems ?? Number.POSITIVE_INFINITY);
    return {
      hits: counters.hits,
      misses: counters.misses,
      loads: counters.loads,
      flushedWrites: counters.flushedWrites,
      coalescedWrites: counters.coalescedWrites,
      retries: flusher.retries,
      deadLetters: counters.deadLetters,
      superseded: counters.superseded,
      evictions: counters.evictions,
      pending: this.#pendingCount(),
      pendingBytes: tier.pendingBytes,
      oldestPendingAgeMs: Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0,
      health: guard.health,
      outboxWritable: outbox.failure === undefined,
      outboxHeals: counters.outboxHeals,
      clockAnchored: anchor.anchored,
      clockAheadMs: wall.aheadMs,
      clockReadingsDistrusted: wall.distrustedReadings,
      entries: tier.cleanEntries,
      bytes: tier.cleanBytes,
      ...feedStats(this.#parts),
    };
  }

  get health(): Health {
    return this.#parts.guard.health;
  }

  /** Why the outbox is refusing writes (last write failure, or its file deleted or replaced and no new one written yet), until it accepts them again. */
  get outboxError(): Error | undefined {
    return this.#parts.outbox.failure;
  }

  /** True until `close()` is called. */
  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /** Writes that can never be applied, with their errors. */
  deadLetters(): DeadLetter[] {
    return this.#parts.outbox.deadLetters();
  }

  /** Re-queues dead letters (all, or those for `keys`) with their original versions; returns how many. */
  retryDeadLetters(keys?: readonly string[]): number {
    this.#assertWritable();
    const { outbox, pipeline, counters } = this.#parts;
    const letters = outbox.requeueDeadLetters(keys);
    const now = Date.now();
    for (const letter of letters) pipeline.requeue(letter, now);
    counters.deadLetters = Math.max(0, counters.deadLetters - letters.length);
    return letters.length;
  }

  on<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): this {
    this.#parts.events.on(event, listener);
    return this;
  }

  off<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): this {
    this.#parts.events.off(event, listener);
    return this;
  }

  #assertWritable(): void {
    if (this.#state !== 'open') throw new ClosedError();
  }

  /** Keys with unflushed writes (a value, appended items, or both). */
  #pendingCount(): number {
    const { tier } = this.#parts;
    let count = tier.dirty.size;
    for (const key of tier.pendingLogs.keys()) if (!tier.dirty.has(key)) count++;
    return count;
  }
}
