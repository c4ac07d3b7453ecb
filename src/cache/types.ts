import type { Logger } from 'pino';
import type { DoorbellState, FeedChange, Storage } from '../storage/contract/types.js';
import type { FeedResetReason, FollowerState } from '../sync/feed/follower.js';
import type { Durability, FlushEvents, Health } from '../sync/types.js';

export type { DoorbellState } from '../storage/contract/types.js';
export type { FeedResetReason, FollowerState } from '../sync/feed/follower.js';
export type { DeadLetter, Durability, Health, SupersededWrite } from '../sync/types.js';

export interface OutboxOptions {
  /** SQLite file holding unflushed writes and dead letters. Required unless durability is `none`. */
  path?: string;
  /**
   * `none`: no outbox, unflushed writes are lost if the process dies.
   * `process` (default): a write survives a crash of the process once `set` resolves.
   * `fsync`: a write also survives power loss once `set` resolves.
   */
  durability?: Durability;
  /** Cap on the outbox file size; writes past it reject with `OutboxError`. Default: no cap. */
  maxFileBytes?: number;
}

export interface HybridCacheOptions {
  storage: Storage;
  outbox?: OutboxOptions;
  /** Most entries kept in the evictable LRU (dirty entries are not counted). Default 10,000. */
  maxEntries?: number;
  /** Most bytes (serialized JSON) kept in the evictable LRU. Default 256 MiB. */
  maxBytes?: number;
  /** Largest accepted value, serialized. Default 4 MiB. */
  maxValueBytes?: number;
  /** Most bytes of unflushed writes; past it writes reject with `BackpressureError`. Default 64 MiB. */
  maxPendingBytes?: number;
  /** TTL applied when `set` is given none; `0` means no expiry. Default 0. */
  defaultTtlMs?: number;
  flush?: {
    /** Most keys per store call. Default 200. */
    batchSize?: number;
    /** Longest a write waits before its batch is sent. Default 20 ms. */
    intervalMs?: number;
    /** Store calls in flight at once. Default 4. */
    concurrency?: number;
  };
  retry?: {
    /** First backoff step; delays grow exponentially with full jitter. Default 100 ms. */
    baseMs?: number;
    /** Cap on one backoff delay. Default 30 s. */
    maxMs?: number;
  };
  breaker?: {
    /** Consecutive failed store calls that open the breaker. Default 5. */
    failureThreshold?: number;
    /** Time the breaker stays open before one probe call is let through. Default 5 s. */
    halfOpenAfterMs?: number;
  };
  /** Deadline for one store read (`getMany`). Default 5 s. */
  readTimeoutMs?: number;
  /** Deadline for one store write batch (`apply`). Default 15 s. */
  writeTimeoutMs?: number;
  /**
   * How far a wall-clock reading may run ahead of the time elapsed since the last trusted one (by
   * the monotonic clock) and of the newest version seen from the store before it is not trusted:
   * versions then keep following monotonic time, an error is logged and `stats().clockAheadMs`
   * says by how much. Default 1 hour.
   */
  maxClockAheadMs?: number;
  /**
   * Following the store's change feed, so that this cache stops serving what other instances
   * (processes, hosts) sharing the store changed. On by default over a store that has a feed;
   * `false` turns it off (only for a store no other instance writes to).
   */
  feed?:
    | false
    | {
        /**
         * Pause between reads of the feed. Default 100 ms: another instance's change is served here
         * within about this long after it reaches the store, for one cheap query per interval
         * (SQLite answers an unchanged feed from a counter, without reading a table).
         */
        pollIntervalMs?: number;
        /** Most changes per read of the feed; a longer backlog is read in several. Default 1,000. */
        pageSize?: number;
      };
  /**
   * How long a read of the feed to its end vouches for the clean entries in memory. Past it (the
   * store slow or unreachable, the feed behind), a read of a clean entry first reads the feed to its
   * end; if the store cannot be reached, memory answers anyway and `stats().possiblyStaleReads`
   * counts it. Must exceed `feed.pollIntervalMs`. Default 1 s: ten polls, so one slow or failed
   * poll does not make reads wait.
   */
  maxStalenessMs?: number;
  /** A pino logger; default: a pino logger at `warn` on stderr named `hybrid-cache`. */
  logger?: Logger;
}

export interface SetOptions {
  /** Time to live from now; `0` means no expiry. Defaults to `defaultTtlMs`. */
  ttlMs?: number;
}

export interface SetValueOptions extends SetOptions {
  /**
   * The caller knows the key holds no appended items anywhere (a key it just made up, such as a new
   * UUID): `getWithItems` then answers from memory without asking the store for them. Default false.
   */
  newKey?: boolean;
}

export interface FlushOptions {
  /** Reject with `FlushTimeoutError` after this long (nothing is lost). Default: wait indefinitely. */
  timeoutMs?: number;
}

export interface CloseOptions {
  /** How long to keep draining before giving up; what is left stays in the outbox. Default 5 s. */
  timeoutMs?: number;
}

export interface CloseResult {
  /** Writes still unflushed when the cache closed (kept in the outbox when it has one). */
  pending: number;
  /** Whether everything pending was flushed before the deadline. */
  drained: boolean;
}

export interface CacheStats {
  hits: number;
  misses: number;
  loads: number;
  pending: number;
  pendingBytes: number;
  oldestPendingAgeMs: number;
  flushedWrites: number;
  coalescedWrites: number;
  retries: number;
  deadLetters: number;
  /** Local writes that lost to a newer write from another instance (see the `superseded` event). */
  superseded: number;
  health: Health;
  /** False while the outbox refuses writes: the last one failed (disk full, I/O error) and no write or background probe has succeeded since, or its file was deleted or replaced and no new one could be written there yet. */
  outboxWritable: boolean;
  /** Times the outbox file was found deleted or replaced and a new one was written at its path from memory. */
  outboxHeals: number;
  /**
   * True once the clock has read the store's version high-water mark since the cache opened and
   * the writes accepted before it were given their versions; nothing is sent before that.
   */
  clockAnchored: boolean;
  /** How far the wall clock runs ahead of the time versions use while it is not trusted (see `maxClockAheadMs`); 0 when trusted. */
  clockAheadMs: number;
  /** Wall-clock readings not trusted since the cache opened. */
  clockReadingsDistrusted: number;
  evictions: number;
  /** Entries in the evictable LRU. */
  entries: number;
  /** Bytes in the evictable LRU. */
  bytes: number;
  /** Where following the store's change feed stands (see `FollowerState`). */
  feedState: FollowerState;
  /** Changes read from the feed (this instance's own included). */
  feedChanges: number;
  /** Clean entries dropped because the feed announced a newer change, or could vouch for nothing. */
  feedDrops: number;
  /** Times the feed could vouch for nothing cached: the store was replaced, or the changes after this cache's place were pruned. */
  feedResets: number;
  /** Time since the last read of the feed to its end began; 0 before the first, or with no feed. */
  feedLagMs: number;
  /**
   * The store's doorbell, which makes the feed be read as soon as another instance's change
   * commits (see `DoorbellState`): `off` without one (the feed is read every poll interval),
   * `broken` when it cannot hear (a transaction-mode pooler, or a connection refused for its
   * settings: see the logs).
   */
  doorbell: DoorbellState;
  /** Reads of clean entries made while the feed vouched for nothing, which first read the feed to its end. */
  revalidations: number;
  /** Of those, reads answered from memory because the store could not be reached: possibly stale. */
  possiblyStaleReads: number;
}

/** The flusher's events, plus the store's health as the cache's breaker sees it. */
export interface CacheEvents extends FlushEvents {
  health: { from: Health; to: Health; error?: Error };
  /**
   * The outbox file was deleted or replaced, and a new one was written at its path with every
   * write still pending (`writes` rows: values, appended items, and writes that were on their way in).
   */
  outboxHealed: { writes: number };
  /**
   * A read of the store's change feed brought changes (this instance's own among them): `dropped`
   * clean entries they made outdated were dropped from memory.
   */
  changes: { changes: readonly FeedChange[]; dropped: number };
  /** The change feed could vouch for nothing cached (`reason`: the store was replaced, or changes were pruned unread); every clean entry was dropped. */
  feedReset: { reason: FeedResetReason; dropped: number };
}

/** A key's value with the items appended to it, in their one order (see `HybridCache.getWithItems`). */
export interface ValueAndItems<V> {
  value: V;
  items: unknown[];
}
