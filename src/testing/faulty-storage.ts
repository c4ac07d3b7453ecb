import {
  PermanentStorageError,
  StorageConfigurationError,
  type StorageErrorKind,
  TransientStorageError,
} from '../storage/contract/errors.js';
import type {
  ApplyResult,
  DoorbellState,
  FeedPage,
  FeedReadOptions,
  Storage,
  StorageCallOptions,
  StorageCleanupOptions,
  StoredEntry,
  VersionedWrite,
} from '../storage/contract/types.js';

/**
 * Wraps any `Storage` with the faults a real store shows, switched on and off by the test: down,
 * failing the next calls, slow, poison keys, and commits whose answer is lost. Everything else goes
 * to the wrapped store unchanged, which stays reachable as `inner` for inspection.
 */
export class FaultyStorage<S extends Storage = Storage> implements Storage {
  readonly #rejectedKeys = new Map<string, string>();
  #failNext: { count: number; kind: StorageErrorKind } = { count: 0, kind: 'transient' };
  #commitThenFail = 0;
  #latencyMs = 0;
  #down = false;

  /** Calls that reached the wrapper, and writes the wrapped store applied, for tests that count round trips. */
  readonly calls = { getMany: 0, apply: 0, writesApplied: 0, highWaterMark: 0, cleanup: 0, changes: 0 };

  /** Present only when the wrapped store has a cleanup, so the wrapper changes nothing else. */
  readonly cleanup?: (opts?: StorageCleanupOptions) => Promise<number>;

  /**
   * Present only when the wrapped store has a change feed. It is down with the store and as slow,
   * but `failNext` leaves it alone: a cache polls its feed on a timer of its own, which would take
   * the failures a test meant for the calls it makes.
   */
  readonly changes?: (after: string | null, opts?: FeedReadOptions) => Promise<FeedPage>;

  /** The wrapped store's doorbell, passed through as it is (present only when it has one). */
  readonly onChange?: Storage['onChange'];
  readonly doorbellState?: () => DoorbellState;

  constructor(readonly inner: S) {
    const innerOnChange = inner.onChange?.bind(inner);
    if (innerOnChange) this.onChange = innerOnChange;
    const innerDoorbellState = inner.doorbellState?.bind(inner);
    if (innerDoorbellState) this.doorbellState = innerDoorbellState;
    const innerChanges = inner.changes?.bind(inner);
    if (innerChanges) {
      this.changes = async (after, opts) => {
        this.calls.changes++;
        await this.#enter(opts?.signal, false);
        return innerChanges(after, opts);
      };
    }
    const innerCleanup = inner.cleanup?.bind(inner);
    if (innerCleanup) {
      this.cleanup = async (opts) => {
        this.calls.cleanup++;
        await this.#enter(opts?.signal);
        return innerCleanup(opts);
      };
    }
  }

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    this.calls.getMany++;
    await this.#enter(opts?.signal);
    return this.inner.getMany(keys, opts);
  }

  async apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    this.calls.apply++;
    await this.#enter(opts?.signal);
    const accepted = writes.filter((write) => !this.#rejectedKeys.has(write.key));
    const innerResults = accepted.length > 0 ? await this.inner.apply(accepted, opts) : [];
    this.calls.writesApplied += innerResults.filter((result) => result.status === 'applied').length;
    if (this.#commitThenFail > 0) {
      this.#commitThenFail--;
      throw new TransientStorageError('connection lost after commit (injected)');
    }
    let next = 0;
    return writes.map((write) => {
      const reason = this.#rejectedKeys.get(write.key);
      if (reason === undefined) return innerResults[next++] as ApplyResult;
      return { status: 'rejected', error: new PermanentStorageError(reason) };
    });
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    this.calls.highWaterMark++;
    await this.#enter(opts?.signal);
    return this.inner.highWaterMark(opts);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }

  /** Every call fails transiently until `comeUp()`. */
  goDown(): void {
    this.#down = true;
  }

  comeUp(): void {
    this.#down = false;
  }

  get isDown(): boolean {
    return this.#down;
  }

  /** The next `count` calls (feed reads aside) fail as a whole with an error of `kind`, before reaching the wrapped store. */
  failNext(count: number, kind: StorageErrorKind = 'transient'): void {
    this.#failNext = { count, kind };
  }

  /** Every write to `key` is rejected permanently (a poison item); the rest of its batch goes through. */
  rejectKey(key: string, reason = `write to ${key} rejected by store (injected)`): void {
    this.#rejectedKeys.set(key, reason);
  }

  acceptKey(key: string): void {
    this.#rejectedKeys.delete(key);
  }

  isRejected(key: string): boolean {
    return this.#rejectedKeys.has(key);
  }

  /** Delays every call by `ms` (abortable through the call's signal). */
  setLatency(ms: number): void {
    this.#latencyMs = ms;
  }

  /** The next `count` apply calls commit their writes, then fail as if the answer were lost. */
  commitThenFailNext(count = 1): void {
    this.#commitThenFail = count;
  }

  /** True while a call would fail: down, or failures still queued. */
  get unhealthy(): boolean {
    return this.#down || this.#failNext.count > 0;
  }

  /** Clears every fault except rejected keys (those belong to the data, not the store's health). */
  heal(): void {
    this.#down = false;
    this.#failNext = { count: 0, kind: 'transient' };
    this.#commitThenFail = 0;
    this.#latencyMs = 0;
  }

  async #enter(signal: AbortSignal | undefined, countsForFailNext = true): Promise<void> {
    signal?.throwIfAborted();
    if (this.#latencyMs > 0) await abortableDelay(this.#latencyMs, signal);
    if (this.#down) throw new TransientStorageError('store unreachable (injected)');
    if (countsForFailNext && this.#failNext.count > 0) {
      this.#failNext.count--;
      throw injectedFailure(this.#failNext.kind);
    }
  }
}

function injectedFailure(kind: StorageErrorKind): Error {
  switch (kind) {
    case 'transient':
      return new TransientStorageError('call failed (injected)');
    case 'permanent':
      return new PermanentStorageError('call rejected (injected)');
    case 'configuration':
      return new StorageConfigurationError('store misconfigured (injected)');
  }
}

function abortableDelay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
