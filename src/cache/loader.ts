import type { FeedChange, Storage, StoredEntry } from '../storage/contract/types.js';
import type { StoreGuard } from '../sync/flush/store-guard.js';
import { StorageUnavailableError } from './errors.js';

/**
 * What the store answered; whether a local write to the key landed while the read was in flight
 * (the answer may predate it); and whether the answer may be outdated by a change another instance
 * made meanwhile, which the change feed announced but the answer does not show (or that the feed
 * could not vouch for): such an answer may be returned, never kept.
 */
export interface LoadResult {
  stored: StoredEntry | undefined;
  writtenDuringRead: boolean;
  outdated: boolean;
}

interface Pending {
  resolve: (result: LoadResult) => void;
  reject: (error: Error) => void;
}

/**
 * Read-through for misses: one store read per key however many callers miss it at once
 * (single-flight), and misses from the same tick share one `getMany` call.
 */
export class Loader {
  readonly #inFlight = new Map<string, Promise<LoadResult>>();
  /** For keys being read: the newest version written locally since the read started. */
  readonly #writtenDuringRead = new Map<string, number>();
  /** For keys being read: changes the feed announced since the read started (or `true`: anything may have changed). */
  readonly #changedDuringRead = new Map<string, FeedChange[] | true>();
  #queued = new Map<string, Pending>();
  #scheduled = false;

  constructor(
    private readonly storage: Storage,
    private readonly guard: StoreGuard,
    private readonly maxKeysPerRead: number,
    private readonly onRead: (keys: number) => void,
    /**
     * Awaited before each store read: whether what it brings may be kept. Until the change feed has
     * a place to follow from, a change committed after the read could never be announced.
     */
    private readonly beforeRead: () => boolean | Promise<boolean> = () => true,
  ) {}

  /** The change feed announced `change`: a read of its key in flight may return an answer older than it. */
  noteChange(change: FeedChange): void {
    const noted = this.#changedDuringRead.get(change.key);
    if (noted === true) return;
    if (noted) noted.push(change);
    else if (this.#inFlight.has(change.key)) this.#changedDuringRead.set(change.key, [change]);
  }

  /** The change feed can vouch for nothing read so far: no read in flight may be kept. */
  noteReset(): void {
    for (const key of this.#inFlight.keys()) this.#changedDuringRead.set(key, true);
  }

  /**
   * A local write to `key` was accepted. A read already in flight may return a snapshot older than
   * it; once that write is flushed and evicted, memory could not tell, so such a read is discarded.
   */
  noteWrite(key: string, version: number): void {
    if (this.#inFlight.has(key))
      this.#writtenDuringRead.set(key, Math.max(this.#writtenDuringRead.get(key) ?? 0, version));
  }

  load(key: string): Promise<LoadResult> {
    const existing = this.#inFlight.get(key);
    if (existing) return existing;
    const promise = new Promise<LoadResult>((resolve, reject) => {
      this.#queued.set(key, { resolve, reject });
    });
    this.#inFlight.set(key, promise);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#dispatch());
    }
    return promise;
  }

  #dispatch(): void {
    this.#scheduled = false;
    const queued = [...this.#queued];
    this.#queued = new Map();
    for (let i = 0; i < queued.length; i += this.maxKeysPerRead)
      void this.#fetch(queued.slice(i, i + this.maxKeysPerRead));
  }

  async #fetch(batch: Array<[string, Pending]>): Promise<void> {
    const keys = batch.map(([key]) => key);
    this.onRead(keys.length);
    try {
      if (!(await this.beforeRead())) for (const key of keys) this.#changedDuringRead.set(key, true);
      const found = await this.guard.read((signal) => this.storage.getMany(keys, { signal }));
      for (const [key, pending] of batch) {
        const entry = found.get(key);
        const written = this.#writtenDuringRead.get(key);
        pending.resolve({
          stored: entry,
          writtenDuringRead: written !== undefined && (entry?.version ?? 0) < written,
          outdated: outdatedBy(entry, this.#changedDuringRead.get(key)),
        });
      }
    } catch (error) {
      const unavailable = new StorageUnavailableError(
        this.guard.isOpen
          ? 'the store is unreachable (circuit breaker open) and the key is not in memory'
          : `the store could not be read: ${(error as Error)?.message ?? String(error)}`,
        { cause: error },
      );
      for (const [, pending] of batch) pending.reject(unavailable);
    } finally {
      for (const key of keys) {
        this.#inFlight.delete(key);
        this.#writtenDuringRead.delete(key);
        this.#changedDuringRead.delete(key);
      }
    }
  }
}

/** Whether an answer misses a change announced while it was read. */
function outdatedBy(entry: StoredEntry | undefined, changes: FeedChange[] | true | undefined): boolean {
  if (changes === undefined) return false;
  if (changes === true) return true;
  return changes.some((change) =>
    change.itemId === undefined
      ? (entry?.version ?? 0) < change.version
      : !entry?.items?.some((item) => item.id === change.itemId),
  );
}
