/**
 * The contract between the cache and a durable store. Adapters stay thin: they move versioned
 * entries in and out and report per-item outcomes; every policy (batching, retry, breaker) lives
 * in the cache.
 */

/**
 * One item of a key's append-only log. `id` is unique across processes (the writer's instance id
 * and the item's version); a key's items are read in `(version, id)` order, the same for every reader.
 */
export interface LogItem {
  id: string;
  /** Version minted by the appending process's clock when the item was appended. */
  version: number;
  /** The item serialized as JSON. */
  json: string;
}

/** A value as the store holds it. `json === null` marks a tombstone (a versioned delete). */
export interface StoredEntry {
  /** Version from the writer's hybrid logical clock; the store keeps the highest one. */
  version: number;
  /** The value serialized as JSON, or `null` for a tombstone. */
  json: string | null;
  /** Absolute expiry in epoch milliseconds, or `null` for no expiry. */
  expiresAt: number | null;
  /**
   * The key's append-only log in `(version, id)` order, returned with live values only (a
   * tombstone or an expired key has none). Absent when the key has no items.
   */
  items?: LogItem[];
}

/** A write of the key's value (or a tombstone). Applied only if `version` is greater than the stored version. */
export interface ValueWrite {
  key: string;
  version: number;
  json: string | null;
  expiresAt: number | null;
  items?: undefined;
  /**
   * The key's log floor this write sets: the version at or below which the key's older items have
   * ended. A value that starts a new log (written over a delete or an expiry the store may never
   * have seen) carries it. It is part of the value write: applied if and only if the value is
   * applied, in the same operation, after which the stored floor is the larger of the two, the
   * key's items at or below it are gone, and an item at or below it arriving later is refused. A
   * write the store refuses as stale leaves the floor as it was. Absent or 0: no floor of its own;
   * otherwise a safe integer below `version`. A tombstone's floor is its own version.
   */
  logFloor?: number;
  /**
   * When (epoch ms, the writing process's clock) the write was made; for a write that replaced
   * earlier unflushed writes of the key, when the first of them was. A store judges whether the
   * value it replaces had expired (so that this one starts a new log) at this time, not when the
   * write arrives, as the writer judged it (see `log-floor.ts`). Absent: the store's clock now.
   */
  writtenAt?: number;
  /**
   * The version of the first of the key's unflushed writes this one replaced (coalesced), when it
   * replaced any. Should the value the store holds have ended (deleted, or expired at `writtenAt`),
   * the new log started with that first write: items above it belong to it and stay.
   */
  firstVersion?: number;
}

/**
 * Items appended to a key's log (never its value). Each item is stored once, by id, whatever how
 * often it is re-sent, unless it is at or below the key's log floor (a late append never
 * resurrects a deleted key or an ended log; `stale` when every item was refused so). `version` is
 * the newest item's; if it is newer than the stored value, and the value was live at `appendedAt`
 * (so a late or re-sent append decides as it would have when it was made), the key's expiry is
 * raised to `expiresAt`: an append refreshes the key's TTL, never shortens it, and never revives an
 * expired key.
 */
export interface AppendWrite {
  key: string;
  version: number;
  json: null;
  expiresAt: number | null;
  /** When (epoch ms, the appending process's clock) the first of these items was appended. */
  appendedAt: number;
  items: LogItem[];
}

/** One write sent to the store: a value (or tombstone), or items appended to the key's log. */
export type VersionedWrite = ValueWrite | AppendWrite;

export function isAppend(write: VersionedWrite): write is AppendWrite {
  return write.items !== undefined;
}

/** `(version, id)` order of a key's items. */
export function compareItems(a: LogItem, b: LogItem): number {
  return a.version - b.version || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The later of two expiries, `null` (never) being the latest. */
export function laterExpiry(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Math.max(a, b);
}

export type ApplyResult =
  | { status: 'applied' }
  /**
   * The store already holds this version or a newer one; `storedVersion` when the adapter knows it.
   * For a value write refused at its own version, `storedDiffers` says whether the store holds a
   * different write there (it lost a tie, see `stale-answer.ts`) or this very one (re-sent, or
   * retried after its answer was lost). An adapter that cannot tell leaves it out; the cache then
   * forgets its copy, so that the next read takes the store's.
   */
  | { status: 'stale'; storedVersion?: number; storedDiffers?: boolean }
  /** This item can never be applied (constraint, permission, validation); the rest of the batch is unaffected. */
  | { status: 'rejected'; error: Error };

export interface StorageCallOptions {
  signal?: AbortSignal;
}

/** Options of `Storage.apply`. */
export interface ApplyOptions extends StorageCallOptions {
  /**
   * An opaque id of the writing cache (each cache instance has its own). A store that records it
   * with the changes these writes make can leave them out of that cache's feed reads (see
   * `FeedReadOptions.skipOrigin`). A hint: a store may ignore it.
   */
  origin?: string;
}

export interface StorageCleanupOptions extends StorageCallOptions {
  /**
   * Tombstones minted longer ago than this are removed, judged by their version's time (versions
   * are wall-clock ms times `LOGICAL_SLOTS`), the same clock in every adapter. Default
   * `DEFAULT_TOMBSTONE_RETENTION_MS` unless the adapter was configured otherwise.
   */
  tombstoneRetentionMs?: number;
}

/**
 * One committed change in a store's feed: a key whose value or log another writer (or this one)
 * changed, with the write's version.
 */
export interface FeedChange {
  key: string;
  /** The write's version: the value's or tombstone's, or for appended items the newest item's. */
  version: number;
  /** For appended items, the newest item's id: a cache that already holds it knows this change. */
  itemId?: string;
}

/** One read of a store's change feed (see `Storage.changes`). */
export interface FeedPage {
  /**
   * The store's identity. It changes when the store is replaced, restored or recreated; a follower
   * that sees it change can vouch for nothing it cached before.
   */
  epoch: string;
  /** Where the next read starts. Opaque to the caller; meaningful only with this `epoch`. */
  cursor: string;
  /** Changes committed after the cursor given, in commit order. */
  changes: FeedChange[];
  /**
   * The cursor given could not be served: it belongs to another epoch, or the changes after it
   * were pruned (retention). `changes` is then empty and `cursor` is the head: the follower must
   * drop whatever it cannot vouch for and go on from there.
   */
  reset: boolean;
  /** The page was full: more changes are ready after `cursor`. */
  more: boolean;
}

export interface FeedReadOptions extends StorageCallOptions {
  /** At most this many changes per page (the adapter may return fewer). Default 1000. */
  limit?: number;
  /**
   * Leave out the changes written with this origin (`ApplyOptions.origin`): the follower's own
   * writes, which it already holds. The cursor still moves past them, so a page of only such
   * changes has empty `changes` and an advanced cursor; `limit` and `more` count them as before.
   * A hint: a store that ignores it delivers them, which a follower tolerates (they are its own).
   */
  skipOrigin?: string;
}

export const DEFAULT_FEED_PAGE_LIMIT = 1000;

/**
 * Where a store's doorbell (`Storage.onChange`) stands: `off` (none, or nobody listens),
 * `connecting` (connecting or reconnecting after a loss), `listening` (it heard itself lately),
 * `broken` (it listens but hears nothing, e.g. through a transaction-mode pooler).
 */
export type DoorbellState = 'off' | 'connecting' | 'listening' | 'broken';

/** What a doorbell ring says of the writes behind it (`Storage.onChange`). */
export interface DoorbellRing {
  /**
   * The origin (`ApplyOptions.origin`) every write behind the ring carried; absent when they had
   * none, had several, or the store cannot tell (a reconnection's ring). A follower that leaves its
   * own changes out of the feed (`skipOrigin`) has nothing to read for a ring of its own origin.
   */
  origin?: string;
}

export interface Storage {
  /**
   * Reads entries by key. Live entries are returned with their value; tombstones are returned
   * with `json: null` so the caller can observe their version; expired and unknown keys are absent.
   */
  getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>>;
  /**
   * Applies writes in order with last-writer-wins by version for values (a write at the stored
   * version is stale: the first to arrive stays, see `stale-answer.ts`), and once per item id for
   * appends; re-applying a write is harmless. Every value write that is applied raises the key's
   * log floor (see `ValueWrite.logFloor`, and `log-floor.ts` for the rules): a tombstone to its
   * own version; a value to its `logFloor`, or to just below itself when it replaces a tombstone
   * or an expired value. Items at or below the floor are removed and refused from then on; a key's
   * items are read, and expire, with its value (see `AppendWrite`). A batch holds at most one value
   * write per key (the cache never sends more); given several, an adapter keeps the newest and may
   * report the others stale.
   * Returns one result per write, in order. Throws when the call as a whole failed (see
   * `TransientStorageError`, `PermanentStorageError`, `StorageConfigurationError`).
   * `opts.origin` names the writing cache, so that its own changes can be left out of the feed it
   * reads (`FeedReadOptions.skipOrigin`); an adapter may ignore it.
   */
  apply(writes: VersionedWrite[], opts?: ApplyOptions): Promise<ApplyResult[]>;
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
  /**
   * The change feed: every change committed after `after`, in commit order, never skipping one:
   * not even a change whose transaction commits after a later one became visible. A change may
   * be delivered more than once (at least once; a change already seen is harmless). Every applied
   * value write and every append that stored an item is a change; cleanup is not. `after: null`
   * asks for the head: no changes, the cursor to follow from. Changes older than the adapter's
   * feed retention are pruned by `cleanup`; a cursor before them answers `reset: true`.
   * Caches over a store with a feed follow it to stop serving copies other instances replaced;
   * a store without one cannot be shared by several caches. With `opts.skipOrigin` the store may
   * leave out the changes written with that origin (the reader's own), moving the cursor past them.
   */
  changes?(after: string | null, opts?: FeedReadOptions): Promise<FeedPage>;
  /**
   * The doorbell: calls `listener` soon after changes commit (PostgreSQL LISTEN/NOTIFY), and once
   * on every (re)connection, so that a follower reads the feed at once instead of at its next
   * poll. Only a hint: a ring may be missed, late or spurious, and the feed stays the truth.
   * Returns the unsubscribe. Optional, with `doorbellState`. A store may say whose writes rang
   * (`DoorbellRing`); one that cannot calls `listener` with nothing.
   */
  onChange?(listener: (ring?: DoorbellRing) => void): () => void;
  /** Where the doorbell stands (see `DoorbellState`). */
  doorbellState?(): DoorbellState;
  close?(): Promise<void>;
}
