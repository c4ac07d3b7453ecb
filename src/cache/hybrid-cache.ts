import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { LogItem, Storage, StoredEntry } from '../storage/types.js';
import { ClockAnchor } from '../sync/clock-anchor.js';
import { Flusher } from '../sync/flusher.js';
import { HybridLogicalClock } from '../sync/hlc.js';
import { MemoryOutbox, type Outbox } from '../sync/outbox/outbox.js';
import { StoreGuard } from '../sync/store-guard.js';
import { CacheEventHub } from './cache-events.js';
import { type Entry, entryBytes, entryFromOutbox, logBytes, serializedEntry } from './entry.js';
import {
  BackpressureError,
  ClosedError,
  CorruptValueError,
  FlushTimeoutError,
  StorageUnavailableError,
} from './errors.js';
import { Loader, SUPERSEDED } from './loader.js';
import { MemoryTier, MISS, type ValueWithLog } from './memory-tier.js';
import type { ResolvedOptions } from './options.js';
import { TierPendingWrites } from './tier-pending-writes.js';
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

const RESOLVED: Promise<void> = Promise.resolve();

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
  readonly #storage: Storage;
  readonly #outbox: Outbox;
  readonly #logger: Logger;
  readonly #tier: MemoryTier;
  readonly #clock = new HybridLogicalClock();
  /** Makes this instance's item ids unique across processes (an item's version is unique only within one). */
  readonly #instanceId = randomBytes(6).toString('base64url');
  readonly #anchor: ClockAnchor;
  readonly #guard: StoreGuard;
  readonly #loader: Loader;
  readonly #flusher: Flusher;
  readonly #events: CacheEventHub;
  readonly #maxValueBytes: number;
  readonly #maxPendingBytes: number;
  readonly #defaultTtlMs: number;
  readonly #readTimeoutMs: number;
  #reservedBytes = 0;
  /** Outbox appends not yet committed: writes whose `set` has not resolved. */
  #appending = 0;
  #onAppendsDone: (() => void) | undefined;
  #state: State = 'open';
  readonly #counters = {
    hits: 0,
    misses: 0,
    loads: 0,
    flushedWrites: 0,
    coalescedWrites: 0,
    deadLetters: 0,
    superseded: 0,
    evictions: 0,
  };

  /** @internal Use `createHybridCache`. */
  constructor(options: ResolvedOptions, outbox: Outbox = new MemoryOutbox()) {
    this.#storage = options.storage;
    this.#outbox = outbox;
    this.#logger = options.logger;
    this.#maxValueBytes = options.maxValueBytes;
    this.#maxPendingBytes = options.maxPendingBytes;
    this.#defaultTtlMs = options.defaultTtlMs;
    this.#readTimeoutMs = options.readTimeoutMs;
    this.#events = new CacheEventHub(options.logger);
    this.#tier = new MemoryTier({
      maxEntries: options.maxEntries,
      maxBytes: options.maxBytes,
      onEvict: () => this.#counters.evictions++,
      effectiveEnd: (endsLogAt) => this.#anchor.effectiveEnd(endsLogAt),
    });
    this.#guard = new StoreGuard({
      ...options.breaker,
      readTimeoutMs: options.readTimeoutMs,
      writeTimeoutMs: options.writeTimeoutMs,
      onHealthChange: (from, to, error) => this.#onHealthChange(from, to, error),
    });
    this.#anchor = new ClockAnchor(
      this.#clock,
      (signal) => this.#guard.read((inner) => this.#storage.highWaterMark({ signal: inner }), signal),
      (reserved) => this.#outbox.reserveVersions(reserved),
    );
    // `flush.batchSize` is documented as the most keys in any one store call: reads included.
    const maxKeysPerCall = options.flush.batchSize;
    this.#loader = new Loader(this.#storage, this.#guard, maxKeysPerCall, (keys) => {
      this.#counters.loads += keys;
    });
    this.#flusher = new Flusher({
      storage: this.#storage,
      guard: this.#guard,
      outbox: this.#outbox,
      pending: new TierPendingWrites(this.#tier, this.#counters, (key, version) =>
        this.#loader.noteWrite(key, version),
      ),
      clock: this.#clock,
      anchor: this.#anchor,
      events: this.#events,
      logger: this.#logger,
      ...options.flush,
      retry: options.retry,
    });
  }

  /** Puts writes (values and appended items) left in the outbox by an earlier process back in memory and starts flushing them; returns how many keys had some. */
  replayOutbox(): number {
    const damaged = this.#outbox.quarantineDamaged();
    for (const letter of damaged) {
      this.#counters.deadLetters++;
      this.#logger.warn(
        { key: letter.key, version: letter.version, error: letter.error },
        'damaged outbox row dead-lettered at replay',
      );
    }
    // Replay runs inside `createHybridCache`, before the caller can listen: announced on a later turn.
    if (damaged.length > 0) {
      setImmediate(() => {
        for (const letter of damaged) this.#events.emit('deadLetter', letter);
      });
    }
    this.#clock.observe(this.#outbox.highestVersion());
    this.#anchor.restoreReserved(this.#outbox.reservedVersions());
    const rows = this.#outbox.pending();
    const now = Date.now();
    for (const row of rows) {
      this.#clock.observe(row.version);
      if (row.unanchored) this.#anchor.replayedUnanchored(row.version);
      this.#tier.putDirty(row.key, entryFromOutbox(row.key, row), Math.min(row.queuedAt, now));
      this.#flusher.schedule(row.key);
    }
    const keys = new Set(rows.map((row) => row.key));
    for (const row of this.#outbox.pendingItems()) {
      this.#clock.observe(row.item.version);
      if (row.unanchored) this.#anchor.replayedUnanchored(row.item.version);
      this.#commitItem(row.key, row.item, row.expiresAt, Math.min(row.queuedAt, now));
      keys.add(row.key);
    }
    return keys.size;
  }

  /** @internal Called by `createHybridCache`: starts reading the store's version high-water mark; writes need not wait for it. */
  anchorClock(): void {
    this.#flusher.anchorClock();
  }

  /** The value, or `undefined` if absent, deleted or expired. Rejects with `StorageUnavailableError` on a miss the store cannot answer. */
  get(key: string): Promise<V | undefined> {
    if (this.#state === 'closed') return Promise.reject(new ClosedError());
    let found: unknown;
    try {
      validateKey(key);
      found = this.#tier.lookup(key);
    } catch (error) {
      return Promise.reject(error);
    }
    if (found !== MISS) {
      this.#counters.hits++;
      return Promise.resolve(found as V | undefined);
    }
    this.#counters.misses++;
    return this.#loader.load(key).then((stored) => {
      // A local write landed while the read was in flight, and memory may no longer hold it: ask again.
      if (stored === SUPERSEDED) return this.get(key);
      if (!isLive(stored) && this.#tier.pendingLogs.has(key))
        return this.#afterItemsFlushed(key).then(() => this.get(key));
      if (stored) {
        this.#clock.observe(stored.version);
        this.#tier.putLoaded(key, stored);
      }
      const answer = this.#tier.lookup(key);
      if (answer !== MISS) return answer as V | undefined;
      // Memory did not keep it (larger than the LRU allows): answer from what the store returned.
      if (!stored || stored.json === null || (stored.expiresAt !== null && stored.expiresAt <= Date.now())) {
        return undefined;
      }
      try {
        return JSON.parse(stored.json) as V;
      } catch (error) {
        throw new CorruptValueError(key, { cause: error });
      }
    });
  }

  /**
   * The value with the items appended to the key (its append-only log) in their one order, the same
   * for every reader: by the version each append was given, then its id. Local items not yet
   * flushed are included. `undefined` when the key is absent, deleted or expired (its items go with it).
   */
  getWithItems(key: string): Promise<ValueAndItems<V> | undefined> {
    // The same steps as get(), written out: no closure per read on the hit path.
    if (this.#state === 'closed') return Promise.reject(new ClosedError());
    let found: ValueWithLog | undefined | typeof MISS;
    try {
      validateKey(key);
      found = this.#tier.lookupWithLog(key);
    } catch (error) {
      return Promise.reject(error);
    }
    if (found !== MISS) {
      this.#counters.hits++;
      return Promise.resolve(found && { value: found.value as V, items: found.items });
    }
    this.#counters.misses++;
    const pendingAtRead = this.#tier.pendingLogs.get(key)?.items.slice() ?? [];
    return this.#loader.load(key).then((stored) => {
      if (stored === SUPERSEDED || this.#settledUnseen(key, pendingAtRead, stored))
        return this.getWithItems(key);
      if (!isLive(stored) && this.#tier.pendingLogs.has(key)) {
        return this.#afterItemsFlushed(key).then(() => this.getWithItems(key));
      }
      if (stored) {
        this.#clock.observe(stored.version);
        this.#tier.putLoaded(key, stored);
      } else {
        this.#tier.learnAbsent(key);
      }
      const answer = this.#tier.lookupWithLog(key);
      if (answer !== MISS) return answer && { value: answer.value as V, items: answer.items };
      // A flush of this key committed while the read was in flight: the store's answer predates
      // what memory holds, so it cannot say what the key's log is. Ask again.
      if ((this.#tier.knownVersion(key) ?? 0) > (stored?.version ?? 0)) return this.getWithItems(key);
      // Memory did not keep it (larger than the LRU allows): answer from what the store returned.
      if (!isLive(stored)) return undefined;
      let value: unknown;
      try {
        value = JSON.parse(stored.json as string);
      } catch (error) {
        throw new CorruptValueError(key, { cause: error });
      }
      try {
        return {
          value: value as V,
          items: this.#tier.itemValues(this.#tier.withPendingItems(key, stored.items ?? [])),
        };
      } catch (error) {
        throw new CorruptValueError(key, { cause: error });
      }
    });
  }

  /**
   * True when an item that was unflushed as the read began has left memory (the store took or
   * refused it) but is not in what the store answered: the answer predates it, ask again.
   */
  #settledUnseen(key: string, pendingAtRead: readonly LogItem[], stored: StoredEntry | undefined): boolean {
    if (pendingAtRead.length === 0) return false;
    const pending = new Set(this.#tier.pendingLogs.get(key)?.items.map((item) => item.id));
    const seen = new Set(stored?.items?.map((item) => item.id));
    return pendingAtRead.some((item) => !pending.has(item.id) && !seen.has(item.id));
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
      const version = this.#clock.next();
      const logItem: LogItem = { id: `${version.toString(36)}.${this.#instanceId}`, version, json };
      this.#assertRoomFor(logBytes([logItem]));
      return this.#enqueueItem(key, logItem, expiresAt, this.#anchor.minted(version));
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
      return this.#write(
        key,
        json,
        expiresAt,
        entryBytes(key, json.length),
        options?.newKey ? [] : undefined,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Deletes a key with a versioned tombstone, so an older write arriving late cannot bring it back. */
  delete(key: string): Promise<void> {
    try {
      this.#assertWritable();
      validateKey(key);
      return this.#write(key, null, null, entryBytes(key, 0));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Resolves when every write acknowledged before the call is in the store (or dead-lettered). */
  async flush(options: FlushOptions = {}): Promise<void> {
    if (this.#state === 'closed') throw new ClosedError();
    const versions = new Map<string, number>();
    for (const [key, entry] of this.#tier.dirty) versions.set(key, entry.version);
    for (const [key, log] of this.#tier.pendingLogs) {
      const newest = log.items[log.items.length - 1]?.version ?? 0;
      versions.set(key, Math.max(versions.get(key) ?? 0, newest));
    }
    const { done, cancel } = this.#flusher.waitFor(versions);
    if (options.timeoutMs === undefined) return done;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        cancel();
        reject(new FlushTimeoutError(this.#pendingCount()));
      }, options.timeoutMs);
    });
    try {
      await Promise.race([done, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops accepting writes, drains until the deadline, then closes the outbox. What is left stays there. */
  async close(options: CloseOptions = {}): Promise<CloseResult> {
    if (this.#state !== 'open') throw new ClosedError('close() was already called');
    this.#state = 'closing';
    // Writes accepted just before close() are still committing to the outbox: include them.
    if (this.#appending > 0) await new Promise<void>((resolve) => (this.#onAppendsDone = resolve));
    let drained = true;
    try {
      await this.flush({ timeoutMs: options.timeoutMs ?? 5_000 });
    } catch {
      drained = false;
    }
    this.#guard.stop();
    await this.#flusher.stop();
    const pending = this.#pendingCount();
    this.#state = 'closed';
    await this.#outbox.close();
    if (pending > 0) {
      this.#logger.warn(
        { pending, durable: this.#outbox.durable, outboxLost: this.#outbox.lost },
        !this.#outbox.durable
          ? 'closed with unflushed writes and no outbox; they are lost'
          : this.#outbox.lost
            ? 'closed with unflushed writes, and the outbox file was deleted or replaced while open; they are lost'
            : 'closed with unflushed writes; they stay in the outbox and flush on next start',
      );
    }
    return { pending, drained };
  }

  async [ABANDON](): Promise<void> {
    this.#state = 'closed';
    this.#guard.stop();
    await this.#flusher.stop();
    await this.#outbox.close();
  }

  stats(): CacheStats {
    const oldestValue = this.#tier.dirty.values().next().value?.since;
    const oldestItems = this.#tier.pendingLogs.values().next().value?.since;
    const oldest = Math.min(oldestValue ?? Number.POSITIVE_INFINITY, oldestItems ?? Number.POSITIVE_INFINITY);
    const counters = this.#counters;
    return {
      hits: counters.hits,
      misses: counters.misses,
      loads: counters.loads,
      flushedWrites: counters.flushedWrites,
      coalescedWrites: counters.coalescedWrites,
      retries: this.#flusher.retries,
      deadLetters: counters.deadLetters,
      superseded: counters.superseded,
      evictions: counters.evictions,
      pending: this.#pendingCount(),
      pendingBytes: this.#tier.pendingBytes,
      oldestPendingAgeMs: Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0,
      health: this.#guard.health,
      outboxWritable: this.#outbox.failure === undefined,
      entries: this.#tier.cleanEntries,
      bytes: this.#tier.cleanBytes,
    };
  }

  get health(): Health {
    return this.#guard.health;
  }

  /** Why the outbox is refusing writes (last write failure, or its file deleted or replaced), until it accepts them again. */
  get outboxError(): Error | undefined {
    return this.#outbox.failure;
  }

  /** True until `close()` is called. */
  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /** Writes that can never be applied, with their errors. */
  deadLetters(): DeadLetter[] {
    return this.#outbox.deadLetters();
  }

  /** Re-queues dead letters (all, or those for `keys`) with their original versions; returns how many. */
  retryDeadLetters(keys?: readonly string[]): number {
    this.#assertWritable();
    const letters = this.#outbox.requeueDeadLetters(keys);
    const now = Date.now();
    for (const letter of letters) {
      if (letter.itemId === undefined) this.#commit(letter.key, entryFromOutbox(letter.key, letter), now);
      else {
        const item = { id: letter.itemId, version: letter.version, json: letter.json ?? 'null' };
        this.#commitItem(letter.key, item, letter.expiresAt, now);
      }
    }
    this.#counters.deadLetters = Math.max(0, this.#counters.deadLetters - letters.length);
    return letters.length;
  }

  on<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): this {
    this.#events.on(event, listener);
    return this;
  }

  off<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): this {
    this.#events.off(event, listener);
    return this;
  }

  #assertWritable(): void {
    if (this.#state !== 'open') throw new ClosedError();
  }

  /** Keys with unflushed writes (a value, appended items, or both). */
  #pendingCount(): number {
    let count = this.#tier.dirty.size;
    for (const key of this.#tier.pendingLogs.keys()) if (!this.#tier.dirty.has(key)) count++;
    return count;
  }

  #write(
    key: string,
    json: string | null,
    expiresAt: number | null,
    bytes: number,
    log?: LogItem[],
  ): Promise<void> {
    this.#assertRoomFor(bytes - this.#tier.pendingBytesOf(key));
    const entry = serializedEntry(this.#clock.next(), json, expiresAt, bytes, log);
    return this.#enqueue(key, entry, Date.now(), this.#anchor.minted(entry.version));
  }

  /** Throws `BackpressureError` when `delta` more unflushed bytes would overflow `maxPendingBytes`. */
  #assertRoomFor(delta: number): void {
    const wouldBe = this.#tier.pendingBytes + this.#reservedBytes + delta;
    if (delta > 0 && wouldBe > this.#maxPendingBytes) {
      throw new BackpressureError(
        `the backlog of unflushed writes is full (${this.#tier.pendingBytes + this.#reservedBytes} of ${this.#maxPendingBytes} bytes); retry once the store catches up`,
        this.#tier.pendingBytes + this.#reservedBytes,
        this.#maxPendingBytes,
      );
    }
  }

  /**
   * The store reads the key as absent or expired, but unflushed items of this process may refresh
   * its TTL there (after a restart memory no longer knows the value they refresh): the answer is
   * what the store holds once they are in. Rejects with `StorageUnavailableError` past the read timeout.
   */
  async #afterItemsFlushed(key: string): Promise<void> {
    const items = this.#tier.pendingLogs.get(key)?.items ?? [];
    const newest = items[items.length - 1]?.version ?? 0;
    const { done, cancel } = this.#flusher.waitFor(new Map([[key, newest]]));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        cancel();
        reject(
          new StorageUnavailableError(`items appended to ${key} could not be flushed to the store in time`),
        );
      }, this.#readTimeoutMs);
    });
    try {
      await Promise.race([done, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Outbox first, memory second, as for a value. */
  #enqueueItem(key: string, item: LogItem, expiresAt: number | null, unanchored: boolean): Promise<void> {
    const now = Date.now();
    if (!this.#outbox.durable) {
      this.#commitItem(key, item, expiresAt, now);
      return RESOLVED;
    }
    const bytes = logBytes([item]);
    this.#reservedBytes += bytes;
    this.#appending++;
    this.#anchor.appendStarted();
    return this.#outbox.append({ key, item, expiresAt, queuedAt: now, unanchored }).then(
      () => {
        this.#appended(bytes);
        this.#commitItem(key, item, expiresAt, now);
        this.#anchor.appendSettled();
      },
      (error: unknown) => {
        this.#appended(bytes);
        if (unanchored) this.#anchor.refused(item.version);
        this.#anchor.appendSettled();
        throw error;
      },
    );
  }

  #commitItem(key: string, item: LogItem, expiresAt: number | null, now: number): void {
    const dirty = this.#tier.dirty.get(key);
    // A delete accepted after this item was minted already took it.
    if (dirty?.deleted && dirty.version > item.version) {
      this.#anchor.forget(item.version);
      return;
    }
    this.#tier.appendItem(key, item, expiresAt, logBytes([item]), now);
    this.#loader.noteWrite(key, item.version);
    this.#flusher.schedule(key);
  }

  /** Outbox first, memory second: a write the outbox refused leaves memory untouched. */
  #enqueue(key: string, entry: Entry, now: number, unanchored = false): Promise<void> {
    if (!this.#outbox.durable) {
      this.#commit(key, entry, now);
      return RESOLVED;
    }
    this.#reservedBytes += entry.bytes;
    const write = {
      key,
      version: entry.version,
      json: entry.json ?? null,
      expiresAt: entry.expiresAt,
      queuedAt: now,
      unanchored,
    };
    this.#appending++;
    // Every append, not only unanchored ones: a re-mint must not overtake a newer write in flight.
    this.#anchor.appendStarted();
    return this.#outbox.append(write).then(
      () => {
        this.#appended(entry.bytes);
        this.#commit(key, entry, now);
        this.#anchor.appendSettled();
      },
      (error: unknown) => {
        this.#appended(entry.bytes);
        if (unanchored) this.#anchor.refused(entry.version);
        this.#anchor.appendSettled();
        throw error;
      },
    );
  }

  #appended(bytes: number): void {
    this.#reservedBytes -= bytes;
    if (--this.#appending === 0 && this.#onAppendsDone) {
      this.#onAppendsDone();
      this.#onAppendsDone = undefined;
    }
  }

  #commit(key: string, entry: Entry, now: number): void {
    const { replaced, accepted } = this.#tier.putDirty(key, entry, now);
    // A write that will never be sent need not be re-minted.
    if (!accepted) {
      this.#anchor.forget(entry.version);
      return;
    }
    if (replaced) this.#anchor.forget(replaced.version);
    this.#loader.noteWrite(key, entry.version);
    if (replaced && !this.#flusher.isInFlight(key)) this.#counters.coalescedWrites++;
    this.#flusher.schedule(key);
  }

  #onHealthChange(from: Health, to: Health, error?: Error): void {
    const log = { from, to, err: error, pending: this.#tier.dirty.size };
    if (to === 'healthy') this.#logger.info(log, 'store healthy again');
    else this.#logger.warn(log, `store ${to}`);
    this.#events.emit('health', { from, to, ...(error ? { error } : {}) });
  }
}

function isLive(stored: StoredEntry | undefined): stored is StoredEntry {
  return (
    stored !== undefined &&
    stored.json !== null &&
    (stored.expiresAt === null || stored.expiresAt > Date.now())
  );
}
