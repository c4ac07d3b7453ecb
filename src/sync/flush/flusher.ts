import PQueue from 'p-queue';
import type { Logger } from 'pino';
import {
  type ApplyResult,
  isAppend,
  type Storage,
  type VersionedWrite,
} from '../../storage/contract/types.js';
import type { ClockAnchor } from '../clock/clock-anchor.js';
import type { HybridLogicalClock } from '../clock/hlc.js';
import { ClosedError, OutboxError } from '../errors.js';
import type { Outbox } from '../outbox/outbox.js';
import type { DeadLetter, FlushEventSink } from '../types.js';
import { classifyFailure } from './failure-kind.js';
import type { PendingWrites } from './pending-writes.js';
import { type RetryOptions, RetryPolicy } from './retry-policy.js';
import { staleOutcome } from './stale-outcome.js';
import type { StoreGuard } from './store-guard.js';

export interface FlusherOptions {
  storage: Storage;
  /** The cache's origin, sent with every batch (`ApplyOptions.origin`). */
  origin?: string;
  guard: StoreGuard;
  outbox: Outbox;
  pending: PendingWrites;
  clock: HybridLogicalClock;
  anchor: ClockAnchor;
  events: FlushEventSink;
  logger: Logger;
  batchSize: number;
  intervalMs: number;
  concurrency: number;
  retry: RetryOptions;
}

interface Waiter {
  remaining: Map<string, number>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Drains pending writes to the store: batches of up to `batchSize` keys at most `intervalMs` after
 * the first write, `concurrency` batches at once, each key in at most one batch at a time, always
 * sending the key's latest version (read from `PendingWrites`, which also hears what became of it).
 * Transient failures wait for the `RetryPolicy`'s timer, so the backlog drains with no new writes;
 * permanent failures split the batch until the poison write is found and dead-lettered.
 */
export class Flusher {
  readonly #storage: Storage;
  readonly #origin: string | undefined;
  readonly #guard: StoreGuard;
  readonly #outbox: Outbox;
  readonly #pending: PendingWrites;
  readonly #clock: HybridLogicalClock;
  readonly #anchor: ClockAnchor;
  readonly #events: FlushEventSink;
  readonly #logger: Logger;
  readonly #batchSize: number;
  readonly #intervalMs: number;
  readonly #concurrency: number;
  readonly #retry: RetryPolicy;
  readonly #queue: PQueue;
  /** Pending keys waiting for a batch, in the order they became ready. */
  readonly #ready = new Set<string>();
  readonly #inFlight = new Set<string>();
  readonly #waiters = new Set<Waiter>();
  readonly #abort = new AbortController();
  #intervalTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: FlusherOptions) {
    this.#storage = options.storage;
    this.#origin = options.origin;
    this.#guard = options.guard;
    this.#outbox = options.outbox;
    this.#pending = options.pending;
    this.#clock = options.clock;
    this.#anchor = options.anchor;
    this.#events = options.events;
    this.#logger = options.logger;
    this.#batchSize = options.batchSize;
    this.#intervalMs = options.intervalMs;
    this.#concurrency = options.concurrency;
    this.#retry = new RetryPolicy(options.retry, () => this.#pump());
    this.#queue = new PQueue({ concurrency: options.concurrency });
  }

  /** Failed store calls (and outbox writes) so far, each of which called for a retry. */
  get retries(): number {
    return this.#retry.failures;
  }

  /** A key became dirty (or dirtier). */
  schedule(key: string): void {
    if (this.#inFlight.has(key)) return; // picked up again when its in-flight write settles
    this.#ready.add(key);
    if (this.#ready.size >= this.#batchSize) this.#pump();
    else this.#armInterval();
  }

  /** Starts reading the store's version high-water mark now, without waiting (opening never waits for the store). */
  anchorClock(): void {
    this.#anchor.ensure(this.#abort.signal).catch((error: unknown) => {
      this.#logger.debug(
        { err: error },
        error instanceof OutboxError
          ? 'could not anchor the clock at open (outbox); tried again before the first flush'
          : 'store not reachable at open; its version high-water mark is read before the first flush',
      );
    });
  }

  isInFlight(key: string): boolean {
    return this.#inFlight.has(key);
  }

  /** Resolves once every (key, version) given has been acknowledged or superseded by a newer acknowledged version. */
  waitFor(versions: Map<string, number>): { done: Promise<void>; cancel: () => void } {
    if (this.#stopped) return { done: Promise.reject(new ClosedError()), cancel: () => {} };
    if (versions.size === 0) return { done: Promise.resolve(), cancel: () => {} };
    let waiter: Waiter | undefined;
    const done = new Promise<void>((resolve, reject) => {
      waiter = { remaining: new Map(versions), resolve, reject };
      this.#waiters.add(waiter);
    });
    this.#pump();
    return { done, cancel: () => waiter && this.#waiters.delete(waiter) };
  }

  /** Stops scheduling, aborts in-flight calls and waits for them to unwind. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#intervalTimer);
    this.#retry.stop();
    this.#abort.abort(new Error('cache closed'));
    for (const waiter of this.#waiters)
      waiter.reject(new ClosedError('the cache closed before these writes were flushed'));
    this.#waiters.clear();
    await this.#queue.onIdle();
  }

  #armInterval(): void {
    if (this.#intervalTimer || this.#retry.waiting || this.#stopped) return;
    this.#intervalTimer = setTimeout(() => {
      this.#intervalTimer = undefined;
      this.#pump();
    }, this.#intervalMs);
  }

  #pump(): void {
    clearTimeout(this.#intervalTimer);
    this.#intervalTimer = undefined;
    if (this.#retry.waiting || this.#stopped) return;
    while (this.#ready.size > 0 && this.#queue.pending + this.#queue.size < this.#concurrency) {
      const keys = this.#claim();
      void this.#queue.add(() => this.#sendBatch(keys)).finally(() => this.#release(keys));
    }
  }

  #claim(): string[] {
    const keys: string[] = [];
    for (const key of this.#ready) {
      this.#ready.delete(key);
      this.#inFlight.add(key);
      keys.push(key);
      if (keys.length >= this.#batchSize) break;
    }
    return keys;
  }

  #release(keys: string[]): void {
    for (const key of keys) {
      this.#inFlight.delete(key);
      // Still dirty: written again while in flight, or the attempt failed. Either way, send again.
      if (this.#pending.isPending(key)) this.#ready.add(key);
    }
    if (this.#ready.size > 0) this.#pump();
  }

  async #sendBatch(keys: string[]): Promise<void> {
    if (!(await this.#anchored())) return;
    const writes: VersionedWrite[] = [];
    for (const key of keys) writes.push(...this.#pending.writesFor(key));
    if (writes.length > 0) await this.#send(writes);
  }

  /**
   * Nothing is sent before the clock is anchored (see `ClockAnchor`); false when the mark could not
   * be read or the anchoring step not written (a retry is scheduled, as for a failed send).
   */
  async #anchored(): Promise<boolean> {
    if (this.#anchor.anchored) return true;
    try {
      await this.#anchor.ensure(this.#abort.signal);
    } catch (error) {
      if (this.#stopped) return false;
      if (error instanceof OutboxError) {
        this.#logger.error(
          { err: error },
          'could not record the new versions of writes accepted before the anchor in the outbox; writes stay queued until it can',
        );
      } else if (classifyFailure(error) !== 'transient') {
        this.#logger.error(
          { err: error },
          "cannot anchor the clock to the store's version high-water mark; writes stay queued until it can",
        );
      }
      this.#scheduleRetry(error as Error);
      return false;
    }
    return !this.#stopped;
  }

  async #send(writes: VersionedWrite[]): Promise<void> {
    let results: ApplyResult[];
    try {
      results = await this.#guard.write(
        (signal) =>
          this.#storage.apply(
            writes,
            this.#origin === undefined ? { signal } : { signal, origin: this.#origin },
          ),
        this.#abort.signal,
      );
    } catch (error) {
      if (this.#stopped) return;
      const kind = classifyFailure(error);
      if (kind === 'permanent') {
        if (writes.length === 1) return this.#deadLetter(writes[0] as VersionedWrite, error as Error);
        const middle = writes.length >> 1;
        await this.#send(writes.slice(0, middle));
        await this.#send(writes.slice(middle));
        return;
      }
      if (kind === 'configuration') {
        this.#logger.error({ err: error }, 'store misconfigured; writes stay queued until it is fixed');
      }
      this.#scheduleRetry(error as Error);
      return;
    }
    const breach = contractBreach(writes, results);
    if (breach !== undefined) {
      // Retried with backoff like a transient failure: settling a malformed answer could mark an
      // unwritten value as flushed, and failing without backoff would re-send in a tight loop.
      const error = new Error(breach);
      this.#logger.error({ err: error }, 'storage adapter broke its contract; retrying the batch');
      this.#scheduleRetry(error);
      return;
    }
    this.#retry.succeeded();
    this.#takeResults(writes, results);
  }

  #takeResults(writes: VersionedWrite[], results: ApplyResult[]): void {
    const acknowledged: VersionedWrite[] = [];
    writes.forEach((write, i) => {
      const result = results[i] as ApplyResult;
      if (result.status === 'rejected') {
        this.#deadLetter(write, result.error);
        return;
      }
      if (result.status === 'applied') {
        this.#pending.applied(write);
      } else {
        const outcome = staleOutcome(write, result);
        if (outcome === 'superseded') {
          // The store holds another write that beat ours: forget ours so the next read fetches
          // that one. Said out loud unless memory already holds a newer local write that replaces
          // ours anyway.
          const storedVersion = result.storedVersion ?? write.version;
          this.#clock.observe(storedVersion);
          if (this.#pending.superseded(write)) this.#superseded(write, storedVersion);
        } else if (outcome === 'alreadyStored') this.#pending.alreadyStored(write);
        else this.#pending.unconfirmed(write);
      }
      acknowledged.push(write);
    });
    if (acknowledged.length === 0) return;
    try {
      this.#outbox.acknowledge(acknowledged);
    } catch (error) {
      // The rows stay in the outbox and are re-sent after a restart, where they come back stale.
      this.#logger.error({ err: error }, 'could not clear acknowledged writes from the outbox');
    }
    for (const write of acknowledged) this.#notifyWaiters(write.key, write.version);
    if (this.#events.wants('flushed')) {
      this.#events.emit('flushed', { count: acknowledged.length, keys: acknowledged.map((w) => w.key) });
    }
  }

  #superseded(write: VersionedWrite, storedVersion: number): void {
    const event = { key: write.key, localVersion: write.version, storedVersion };
    this.#logger.warn(
      event,
      storedVersion > write.version
        ? 'a local write lost to a newer write from another instance'
        : 'a local write lost a tie with a write from another instance at the same version',
    );
    this.#events.emit('superseded', event);
  }

  #deadLetter(write: VersionedWrite, error: Error): void {
    const reason = error?.message ?? String(error);
    const failedAt = Date.now();
    const { key, expiresAt } = write;
    // Appended items are dead-lettered one by one, each with its own id, version and JSON.
    const letters: DeadLetter[] = isAppend(write)
      ? write.items.map((item) => ({
          key,
          version: item.version,
          json: item.json,
          expiresAt,
          itemId: item.id,
          error: reason,
          failedAt,
        }))
      : [{ key, version: write.version, json: write.json, expiresAt, error: reason, failedAt }];
    try {
      for (const letter of letters) this.#outbox.deadLetter(letter);
    } catch (outboxError) {
      this.#logger.error(
        { err: outboxError, key: write.key },
        'could not record a dead letter; keeping the write queued',
      );
      this.#scheduleRetry(outboxError as Error);
      return;
    }
    this.#pending.deadLettered(write);
    this.#logger.warn(
      { key, version: write.version, items: isAppend(write) ? write.items.length : undefined, error: reason },
      'write dead-lettered',
    );
    for (const letter of letters) this.#events.emit('deadLetter', letter);
    this.#notifyWaiters(key, write.version);
  }

  #scheduleRetry(error: Error): void {
    const armed = this.#retry.failed(error);
    if (armed) this.#events.emit('retry', { attempt: armed.attempt, delayMs: armed.delayMs, error });
  }

  #notifyWaiters(key: string, version: number): void {
    for (const waiter of this.#waiters) {
      const wanted = waiter.remaining.get(key);
      if (wanted === undefined || wanted > version) continue;
      waiter.remaining.delete(key);
      if (waiter.remaining.size === 0) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }
}

const STATUSES: ReadonlySet<unknown> = new Set(['applied', 'stale', 'rejected']);

/** What is wrong with an adapter's answer, or undefined when it keeps the Storage contract. */
function contractBreach(writes: VersionedWrite[], results: ApplyResult[]): string | undefined {
  if (!Array.isArray(results) || results.length !== writes.length) {
    return `storage.apply returned ${(results as unknown[] | undefined)?.length} results for ${writes.length} writes`;
  }
  const statusOf = (result: ApplyResult | null | undefined): unknown => result?.status;
  const bad = results.findIndex((result) => !STATUSES.has(statusOf(result)));
  if (bad === -1) return undefined;
  return `storage.apply returned status ${String(statusOf(results[bad]))} for write ${bad} (key ${writes[bad]?.key}); expected applied, stale or rejected`;
}
