import type { VersionedWrite } from '../../storage/contract/types.js';

/**
 * The writes accepted but not yet in the store, as the flusher sees them: it reads each key's
 * pending writes (its latest value and its unflushed appended items) and reports what became of
 * those it sent. The cache implements it over its memory tier; for a value, every method does
 * nothing once a newer write replaced it; for appended items, it concerns the items sent.
 */
export interface PendingWrites {
  /**
   * What to send for `key`, in this order: its unflushed items appended before the first of its
   * unflushed value writes, its newest value write, then the items appended after that first one
   * (items as one or more appends each); empty once nothing is pending.
   */
  writesFor(key: string): VersionedWrite[];
  isPending(key: string): boolean;
  /** The store applied this write. */
  applied(write: VersionedWrite): void;
  /** The store already held this write: an earlier attempt committed but its answer was lost. */
  alreadyStored(write: VersionedWrite): void;
  /**
   * The store refused this value at its own version without saying whether it holds this write or
   * another that won a tie: settle it without keeping memory's copy (the next read asks the store).
   */
  unconfirmed(write: VersionedWrite): void;
  /** The store holds a newer write (a newer tombstone, for items), or a value that won a tie at this write's version; returns false when a newer local write replaced this one anyway. */
  superseded(write: VersionedWrite): boolean;
  /** The write can never be applied and was parked in the outbox's dead letters. */
  deadLettered(write: VersionedWrite): void;
}
