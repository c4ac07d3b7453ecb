import type { VersionedWrite } from '../storage/types.js';

/**
 * The writes accepted but not yet in the store, as the flusher sees them: it reads each key's latest
 * write and reports what became of the versions it sent. The cache implements it over its memory
 * tier; every method takes the version concerned and does nothing once a newer write replaced it.
 */
export interface PendingWrites {
  /** The newest unflushed write of `key`, or undefined once nothing is pending for it. */
  latest(key: string): VersionedWrite | undefined;
  isPending(key: string): boolean;
  /** The write was given the new version `to` (in the outbox already) before it was sent. */
  reminted(key: string, from: number, to: number): void;
  /** The store applied this version. */
  applied(key: string, version: number): void;
  /** The store already held this version: an earlier attempt committed but its answer was lost. */
  alreadyStored(key: string, version: number): void;
  /** The store holds a newer write from elsewhere; returns false when a newer local write replaced this one anyway. */
  superseded(key: string, version: number): boolean;
  /** The write can never be applied and was parked in the outbox's dead letters. */
  deadLettered(key: string, version: number): void;
}
