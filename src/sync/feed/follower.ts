import { performance } from 'node:perf_hooks';
import type { FeedChange, FeedPage } from '../../storage/contract/types.js';
import type { FollowerDoorbell } from './own-rings.js';

/**
 * Where a follower stands:
 * - `off`: following was turned off (`feed: false`);
 * - `unsupported`: the store has no change feed;
 * - `starting`: the first read of the feed's head has not succeeded yet;
 * - `following`: it read the feed to its end within `maxStalenessMs`, so it vouches for memory;
 * - `behind`: it has not, so a read of a clean entry revalidates first.
 */
export type FollowerState = 'off' | 'unsupported' | 'starting' | 'following' | 'behind';

/** Why everything cached must go: the store has another identity, or the changes after the cursor were pruned. */
export type FeedResetReason = 'epoch' | 'pruned';

/** Where the follower's news goes (the cache's memory and reads in flight). */
export interface FeedSink {
  /** Changes committed after the last read, in commit order (some perhaps seen before). */
  changed(changes: readonly FeedChange[]): void;
  /** Nothing cached can be vouched for any more. */
  reset(reason: FeedResetReason): void;
}

export interface FeedFollowerOptions {
  /** One read of the feed after `cursor` (`null`: the head), with the store's deadline and breaker. */
  read: (cursor: string | null) => Promise<FeedPage>;
  sink: FeedSink;
  /** Pause between reads of the feed. */
  pollIntervalMs: number;
  /** How long a read of the feed to its end vouches for memory. */
  maxStalenessMs: number;
  /** A read of the feed failed (the store unreachable, most likely). */
  onError: (error: unknown) => void;
  /** The store's doorbell (`Storage.onChange` through own-rings.ts): rings `ring()` on changes. */
  doorbell?: FollowerDoorbell;
  monotonicMs?: () => number;
}

/**
 * Follows a store's change feed: reads it every `pollIntervalMs`, hands every change to the sink,
 * and vouches for memory for `maxStalenessMs` after each read that reached the feed's end (timed
 * from when that read began, so a slow answer does not stretch the bound). The vouch is a flag a
 * timer clears, so the read hit path costs one property read.
 */
export class FeedFollower {
  readonly #options: FeedFollowerOptions;
  readonly #now: () => number;
  #cursor: string | null = null;
  #epoch: string | undefined;
  #vouched = false;
  #vouchTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #inFlight: Promise<boolean> | undefined;
  #followedAt: number | undefined;
  #stopped = false;
  /** Rung while a read was in flight: that read may have begun before the change rung for. */
  #rungDuringRead = false;
  #unsubscribe: (() => void) | undefined;
  #changesReceived = 0;
  #resets = 0;
  #failures = 0;

  constructor(options: FeedFollowerOptions) {
    this.#options = options;
    this.#now = options.monotonicMs ?? (() => performance.now());
  }

  /** Reads the head now, then follows. */
  start(): void {
    this.#unsubscribe = this.#options.doorbell?.(() => this.ring());
    void this.#poll();
  }

  stop(): void {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#vouched = false;
    clearTimeout(this.#pollTimer);
    clearTimeout(this.#vouchTimer);
  }

  /** True while memory's clean entries may be served without asking the store. */
  get vouched(): boolean {
    return this.#vouched;
  }

  /** Whether it has a place in the feed: until then, what a read brings from the store may already be outdated. */
  get started(): boolean {
    return this.#epoch !== undefined;
  }

  get state(): FollowerState {
    if (this.#epoch === undefined) return 'starting';
    return this.#vouched ? 'following' : 'behind';
  }

  /** Time since the last read that reached the feed's end began; 0 before any. */
  get lagMs(): number {
    return this.#followedAt === undefined ? 0 : Math.max(0, this.#now() - this.#followedAt);
  }

  get changesReceived(): number {
    return this.#changesReceived;
  }

  get resets(): number {
    return this.#resets;
  }

  /** Reads of the feed that failed. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Reads the feed to its end now (or joins the read in flight). Resolves true when it got there,
   * false when the store could not be read.
   */
  catchUp(): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    this.#inFlight ??= this.#readToEnd().finally(() => {
      this.#inFlight = undefined;
      if (this.#rungDuringRead) {
        this.#rungDuringRead = false;
        void this.catchUp();
      }
    });
    return this.#inFlight;
  }

  /**
   * Something changed (the doorbell rang): reads the feed now, without waiting for the next poll.
   * Rings while a read is in flight make exactly one more read after it, as that read may have
   * begun before the change committed.
   */
  ring(): void {
    if (this.#stopped) return;
    if (this.#inFlight) this.#rungDuringRead = true;
    else void this.catchUp();
  }

  async #poll(): Promise<void> {
    const startedAt = this.#now();
    await this.catchUp();
    if (this.#stopped) return;
    // Start to start: a slow read does not stretch the interval (it is what bounds convergence).
    const wait = Math.max(0, this.#options.pollIntervalMs - (this.#now() - startedAt));
    this.#pollTimer = setTimeout(() => void this.#poll(), wait);
    this.#pollTimer.unref();
  }

  async #readToEnd(): Promise<boolean> {
    const startedAt = this.#now();
    try {
      for (;;) {
        const page = await this.#options.read(this.#cursor);
        if (this.#stopped) return false;
        this.#take(page);
        if (!page.more) break;
      }
    } catch (error) {
      this.#failures++;
      this.#options.onError(error);
      return false;
    }
    this.#vouchFrom(startedAt);
    return true;
  }

  #take(page: FeedPage): void {
    const known = this.#epoch;
    const reason: FeedResetReason | undefined =
      known !== undefined && page.epoch !== known
        ? 'epoch'
        : page.reset && known !== undefined
          ? 'pruned'
          : undefined;
    this.#epoch = page.epoch;
    this.#cursor = page.cursor;
    if (reason) {
      this.#resets++;
      this.#options.sink.reset(reason);
      return;
    }
    if (page.changes.length === 0) return;
    this.#changesReceived += page.changes.length;
    this.#options.sink.changed(page.changes);
  }

  /** Reads to the end are one at a time (`catchUp` is single-flight), so each began after the last. */
  #vouchFrom(startedAt: number): void {
    this.#followedAt = startedAt;
    const left = startedAt + this.#options.maxStalenessMs - this.#now();
    clearTimeout(this.#vouchTimer);
    if (left <= 0) {
      this.#vouched = false;
      return;
    }
    this.#vouched = true;
    this.#vouchTimer = setTimeout(() => {
      this.#vouched = false;
    }, left);
    this.#vouchTimer.unref();
  }
}
