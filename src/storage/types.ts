/**
 * The contract between the cache and a durable store. Adapters stay thin: they move versioned
 * entries in and out and report per-item outcomes; every policy (batching, retry, breaker) lives
 * in the cache.
 */

/** A value as the store holds it. `json === null` marks a tombstone (a versioned delete). */
export interface StoredEntry {
  /** Version from the writer's hybrid logical clock; the store keeps the highest one. */
  version: number;
  /** The value serialized as JSON, or `null` for a tombstone. */
  json: string | null;
  /** Absolute expiry in epoch milliseconds, or `null` for no expiry. */
  expiresAt: number | null;
}

/** One write sent to the store. Applied only if `version` is greater than the stored version. */
export interface VersionedWrite extends StoredEntry {
  key: string;
}

export type ApplyResult =
  | { status: 'applied' }
  /** The store already holds this version or a newer one; `storedVersion` when the adapter knows it. */
  | { status: 'stale'; storedVersion?: number }
  /** This item can never be applied (constraint, permission, validation); the rest of the batch is unaffected. */
  | { status: 'rejected'; error: Error };

export interface StorageCallOptions {
  signal?: AbortSignal;
}

export interface StorageCleanupOptions extends StorageCallOptions {
  /**
   * Tombstones whose delete is older than this are removed. Default
   * `DEFAULT_TOMBSTONE_RETENTION_MS` (7 days) unless the adapter was configured otherwise.
   */
  tombstoneRetentionMs?: number;
}

export interface Storage {
  /**
   * Reads entries by key. Live entries are returned with their value; tombstones are returned
   * with `json: null` so the caller can observe their version; expired and unknown keys are absent.
   */
  getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>>;
  /**
   * Applies writes with last-writer-wins by version; re-applying a write is harmless.
   * Returns one result per write, in order. Throws when the call as a whole failed (see
   * `TransientStorageError`, `PermanentStorageError`, `StorageConfigurationError`).
   */
  apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]>;
  /**
   * The highest version the store holds, tombstones and expired entries included; 0 when it holds
   * nothing. A cache's clock starts above it, so a process whose wall clock or outbox is behind
   * never mints versions that would lose to ones already stored. Keep it cheap (a max over an
   * indexed column): it is called when a cache opens.
   */
  highWaterMark(opts?: StorageCallOptions): Promise<number>;
  /**
   * Optional housekeeping, called periodically (the daemon's `STORE_CLEANUP_INTERVAL_MS`): removes
   * expired entries (they already read as absent; this reclaims their space) and tombstones older
   * than the retention. Keep tombstones at least as long as a write can arrive late (an outbox
   * replayed after an outage): a removed tombstone no longer blocks an older write. Returns how many
   * entries were removed.
   */
  cleanup?(opts?: StorageCleanupOptions): Promise<number>;
  close?(): Promise<void>;
}
