import { ENTRY_OVERHEAD_BYTES } from './entry.js';
import { MAX_KEY_BYTES } from './validation.js';

const MiB = 2 ** 20;

export const DURABILITIES = ['none', 'process', 'fsync'] as const;

/**
 * Defaults of `createHybridCache`'s options. The daemon's environment variables default to these
 * too, so the library and the daemon cannot drift apart.
 */
export const CACHE_OPTION_DEFAULTS = {
  maxEntries: 10_000,
  maxBytes: 256 * MiB,
  maxValueBytes: 4 * MiB,
  maxPendingBytes: 64 * MiB,
  defaultTtlMs: 0,
  readTimeoutMs: 5_000,
  writeTimeoutMs: 15_000,
  maxClockAheadMs: 3_600_000,
  maxStalenessMs: 1_000,
  feed: { pollIntervalMs: 100, pageSize: 1_000 },
  flush: { batchSize: 200, intervalMs: 20, concurrency: 4 },
  retry: { baseMs: 100, maxMs: 30_000 },
  breaker: { failureThreshold: 5, halfOpenAfterMs: 5_000 },
  outbox: { durability: 'process' satisfies (typeof DURABILITIES)[number] },
} as const;

/** Most bytes an entry counts beyond its serialized value: a longest key and the per-entry overhead. */
export const ENTRY_HEADROOM_BYTES = MAX_KEY_BYTES + ENTRY_OVERHEAD_BYTES;

export interface MemoryLimits {
  maxBytes: number;
  maxValueBytes: number;
  maxPendingBytes: number;
}

/**
 * The limits too small for the largest entry (a largest value under a longest key). Such an entry
 * must fit in the LRU (`maxBytes`) and in an empty backlog (`maxPendingBytes`), or it would be
 * refused with `BackpressureError` on every retry.
 */
export function limitsTooSmallForLargestEntry(limits: MemoryLimits): Array<'maxBytes' | 'maxPendingBytes'> {
  const largest = limits.maxValueBytes + ENTRY_HEADROOM_BYTES;
  return (['maxBytes', 'maxPendingBytes'] as const).filter((limit) => limits[limit] < largest);
}
