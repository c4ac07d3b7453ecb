import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Storage } from '../storage/contract/types.js';
import { ClockAnchor } from '../sync/clock/clock-anchor.js';
import { HybridLogicalClock } from '../sync/clock/hlc.js';
import { WallClock } from '../sync/clock/wall-clock.js';
import { FeedFollower } from '../sync/feed/follower.js';
import { skippingOwnRings } from '../sync/feed/own-rings.js';
import { Flusher } from '../sync/flush/flusher.js';
import { StoreGuard } from '../sync/flush/store-guard.js';
import type { Outbox } from '../sync/outbox/outbox.js';
import { CacheEventHub } from './cache-events.js';
import { StorageUnavailableError } from './errors.js';
import { Loader } from './loader.js';
import { MemoryPendingWrites } from './memory-pending-writes.js';
import { MemoryTier } from './memory-tier.js';
import type { ResolvedOptions } from './options.js';
import { ReadPath } from './read-path.js';
import type { CacheStats, Health } from './types.js';
import { Vouching } from './vouching.js';
import { WritePipeline } from './write-pipeline.js';

/** The cache's counters, read by `stats()`. */
export interface CacheCounters {
  hits: number;
  misses: number;
  loads: number;
  flushedWrites: number;
  coalescedWrites: number;
  deadLetters: number;
  superseded: number;
  evictions: number;
  /** New outbox files written from memory after the one in use was deleted or replaced. */
  outboxHeals: number;
  feedDrops: number;
  revalidations: number;
  possiblyStaleReads: number;
}

/** The parts a `HybridCache` is a facade over. */
export interface CacheParts {
  storage: Storage;
  outbox: Outbox;
  logger: Logger;
  counters: CacheCounters;
  events: CacheEventHub;
  clock: HybridLogicalClock;
  wall: WallClock;
  anchor: ClockAnchor;
  tier: MemoryTier;
  guard: StoreGuard;
  loader: Loader;
  flusher: Flusher;
  pipeline: WritePipeline;
  reads: ReadPath;
  /** Absent when following is turned off or the store has no change feed. */
  follower: FeedFollower | undefined;
  vouching: Vouching;
}

/** Builds and wires a cache's parts: the one place that knows how they fit together. */
export function composeCache(options: ResolvedOptions, outbox: Outbox): CacheParts {
  const { storage, logger } = options;
  const counters: CacheCounters = {
    hits: 0,
    misses: 0,
    loads: 0,
    flushedWrites: 0,
    coalescedWrites: 0,
    deadLetters: 0,
    superseded: 0,
    evictions: 0,
    outboxHeals: 0,
    feedDrops: 0,
    revalidations: 0,
    possiblyStaleReads: 0,
  };
  const events = new CacheEventHub(logger);
  // This instance's id in the store's feed: its writes carry it, and its follower asks the store
  // to leave them out (it holds them already). Per instance, never persisted: a restarted process
  // reads its predecessor's changes as foreign, which is the safe side.
  const origin = randomUUID();
  const wall = new WallClock({
    maxAheadMs: options.maxClockAheadMs,
    onDistrust: ({ readingMs, trustedMs }) =>
      logger.error(
        { readingTime: new Date(readingMs).toISOString(), trustedTime: new Date(trustedMs).toISOString() },
        'the wall clock jumped implausibly far ahead; versions follow the monotonic clock until it reads sensibly again',
      ),
    onTrusted: (readingMs) =>
      logger.warn({ readingTime: new Date(readingMs).toISOString() }, 'the wall clock reads sensibly again'),
  });
  const clock = new HybridLogicalClock(wall);
  const guard = new StoreGuard({
    ...options.breaker,
    readTimeoutMs: options.readTimeoutMs,
    writeTimeoutMs: options.writeTimeoutMs,
    onHealthChange: (from, to, error) => reportHealth(logger, events, tier, from, to, error),
  });
  const anchor: ClockAnchor = new ClockAnchor(
    (signal) => guard.read((inner) => storage.highWaterMark({ signal: inner }), signal),
    (mark): Promise<void> => pipeline.anchorAt(mark),
  );
  const tier: MemoryTier = new MemoryTier({
    maxEntries: options.maxEntries,
    maxBytes: options.maxBytes,
    onEvict: () => counters.evictions++,
    effectiveFloor: (logFloor): number => anchor.effectiveFloor(logFloor),
  });
  // `flush.batchSize` is documented as the most keys in any one store call: reads included.
  const follower = followerFor(options, {
    origin,
    guard,
    clock,
    counters,
    events,
    tier,
    loader: (): Loader => loader,
  });
  const loader = new Loader(
    storage,
    guard,
    options.flush.batchSize,
    (keys) => {
      counters.loads += keys;
    },
    // The first reads wait for the feed's head, so that every change after them is announced.
    () => follower === undefined || follower.started || follower.catchUp(),
  );
  const flusher = new Flusher({
    storage,
    origin,
    guard,
    outbox,
    pending: new MemoryPendingWrites(tier, counters, (key, version) => loader.noteWrite(key, version)),
    clock,
    anchor,
    events,
    logger,
    ...options.flush,
    retry: options.retry,
  });
  const pipeline: WritePipeline = new WritePipeline({
    tier,
    outbox,
    clock,
    anchor,
    maxPendingBytes: options.maxPendingBytes,
    listener: {
      written: (key, version) => loader.noteWrite(key, version),
      schedule: (key) => flusher.schedule(key),
      isInFlight: (key) => flusher.isInFlight(key),
      coalesced: () => counters.coalescedWrites++,
      outboxHealed: (writes) => {
        counters.outboxHeals++;
        events.emit('outboxHealed', { writes });
      },
    },
  });
  // The outbox notices its file lost; memory holds what the new one must be written with.
  outbox.onLost?.(() => void pipeline.healOutbox());
  const reads = new ReadPath({
    tier,
    loader,
    clock,
    pendingFlushed: (key) => pendingFlushed(flusher, tier, key, options.readTimeoutMs),
    onAskAgain: (key, reason) => logger.debug({ key, reason }, 'a read asks the store again'),
  });
  return {
    storage,
    outbox,
    logger,
    counters,
    events,
    clock,
    wall,
    anchor,
    tier,
    guard,
    loader,
    flusher,
    pipeline,
    reads,
    follower,
    vouching: new Vouching(follower, counters),
  };
}

/**
 * The follower of the store's change feed, wired to memory and to reads in flight; none when
 * following is turned off or the store has no feed.
 */
function followerFor(
  options: ResolvedOptions,
  parts: {
    origin: string;
    guard: StoreGuard;
    clock: HybridLogicalClock;
    counters: CacheCounters;
    events: CacheEventHub;
    tier: MemoryTier;
    loader: () => Loader;
  },
): FeedFollower | undefined {
  const { origin, guard, clock, counters, events, tier, loader } = parts;
  const { storage, logger, feed } = options;
  const changes = storage.changes?.bind(storage);
  if (feed === false || changes === undefined) return undefined;
  const onChange = storage.onChange?.bind(storage);
  return new FeedFollower({
    ...(onChange ? { doorbell: skippingOwnRings(onChange, origin) } : {}),
    read: (cursor) =>
      guard.follow((signal) => changes(cursor, { signal, limit: feed.pageSize, skipOrigin: origin })),
    pollIntervalMs: feed.pollIntervalMs,
    maxStalenessMs: options.maxStalenessMs,
    sink: {
      changed(changes) {
        let dropped = 0;
        for (const change of changes) {
          // Newer versions elsewhere: this instance's next writes go above them.
          clock.observe(change.version);
          loader().noteChange(change);
          if (tier.applyChange(change)) dropped++;
        }
        counters.feedDrops += dropped;
        events.emit('changes', { changes, dropped });
      },
      reset(reason) {
        loader().noteReset();
        const dropped = tier.forgetStored();
        counters.feedDrops += dropped;
        logger.warn(
          { reason, dropped },
          reason === 'epoch'
            ? 'the store was replaced, restored or recreated: every cached entry was dropped'
            : 'changes this cache had not read yet were pruned from the feed: every cached entry was dropped',
        );
        events.emit('feedReset', { reason, dropped });
      },
    },
    onError: (error) => logger.debug({ err: error }, 'the change feed could not be read'),
  });
}

/** The change feed's part of `stats()`. */
export function feedStats(
  parts: CacheParts,
): Pick<
  CacheStats,
  | 'feedState'
  | 'feedChanges'
  | 'feedDrops'
  | 'feedResets'
  | 'feedLagMs'
  | 'doorbell'
  | 'revalidations'
  | 'possiblyStaleReads'
> {
  const { follower, counters, storage } = parts;
  return {
    feedState: follower?.state ?? (storage.changes ? 'off' : 'unsupported'),
    feedChanges: follower?.changesReceived ?? 0,
    feedDrops: counters.feedDrops,
    feedResets: follower?.resets ?? 0,
    feedLagMs: Math.round(follower?.lagMs ?? 0),
    // Only a follower listens: without one, nobody rings.
    doorbell: (follower && storage.doorbellState?.()) || 'off',
    revalidations: counters.revalidations,
    possiblyStaleReads: counters.possiblyStaleReads,
  };
}

/**
 * Resolves once the key's unflushed items and value are in the store: the store reads the key as
 * absent or expired, but they may refresh its TTL there (after a restart memory no longer knows the
 * value they refresh), or the value may continue the log of a value that expired after it was
 * written. Rejects with `StorageUnavailableError` past the read timeout.
 */
async function pendingFlushed(
  flusher: Flusher,
  tier: MemoryTier,
  key: string,
  timeoutMs: number,
): Promise<void> {
  const items = tier.pendingLogs.get(key)?.items ?? [];
  const newest = Math.max(items[items.length - 1]?.version ?? 0, tier.dirty.get(key)?.version ?? 0);
  const { done, cancel } = flusher.waitFor(new Map([[key, newest]]));
  await withDeadline(done, timeoutMs, cancel, () => {
    const what = items.length > 0 ? `items appended to ${key}` : `the value written to ${key}`;
    return new StorageUnavailableError(`${what} could not be flushed to the store in time`);
  });
}

/** Races `done` against a timer; on timeout cancels and rejects with `error()`. */
export async function withDeadline(
  done: Promise<void>,
  timeoutMs: number,
  cancel: () => void,
  error: () => Error,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      cancel();
      reject(error());
    }, timeoutMs);
  });
  try {
    await Promise.race([done, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function reportHealth(
  logger: Logger,
  events: CacheEventHub,
  tier: MemoryTier,
  from: Health,
  to: Health,
  error?: Error,
): void {
  const log = { from, to, err: error, pending: tier.dirty.size };
  if (to === 'healthy') logger.info(log, 'store healthy again');
  else logger.warn(log, `store ${to}`);
  events.emit('health', { from, to, ...(error ? { error } : {}) });
}
