import { LOGICAL_SLOTS } from './version.js';

const DAY_MS = 24 * 3_600_000;

/**
 * How long `Storage.cleanup` keeps tombstones unless told otherwise: 7 days, for every adapter,
 * judged by the time a tombstone's version was minted (`expiredTombstoneVersionBound`). The one
 * default in SQL (`p_tombstone_retention` of the cleanup functions in supabase/migrations) is the
 * same, and a test holds the two equal.
 */
export const DEFAULT_TOMBSTONE_RETENTION_MS = 7 * DAY_MS;

/** A retention as the PostgreSQL interval the SQL cleanup functions take. */
export function retentionInterval(retentionMs: number): string {
  return `${Math.floor(nonNegativeMs(retentionMs))} milliseconds`;
}

/** A duration in milliseconds as given by a caller, checked. */
export function nonNegativeMs(value: number, name = 'tombstoneRetentionMs'): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name} must be a finite number of milliseconds >= 0, got ${value}`);
  }
  return value;
}

/**
 * Tombstones with a version below this bound were minted at or before `now - retentionMs` and are
 * old enough to remove (a version minted at `t` ms is below `(t + 1) * LOGICAL_SLOTS`).
 */
export function expiredTombstoneVersionBound(retentionMs: number, now: number): number {
  return (now - retentionMs + 1) * LOGICAL_SLOTS;
}
