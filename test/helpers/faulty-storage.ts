import {
  type ApplyResult,
  PermanentStorageError,
  type Storage,
  type StorageCallOptions,
  type StoredEntry,
  TransientStorageError,
  type VersionedWrite,
} from '../../src/index.js';

/**
 * Wraps any adapter with the faults a real store shows: down, failing the next N calls, poison
 * keys, and commits whose answer is lost. Lets one model test drive every adapter the same way.
 */
export class FaultyStorage implements Storage {
  #down = false;
  #failNext = 0;
  #commitThenFail = 0;
  #latencyMs = 0;
  readonly #poisoned = new Set<string>();

  constructor(readonly inner: Storage) {}

  get unhealthy(): boolean {
    return this.#down || this.#failNext > 0;
  }

  goDown(): void {
    this.#down = true;
  }

  comeUp(): void {
    this.#down = false;
  }

  failNext(count: number): void {
    this.#failNext = count;
  }

  commitThenFailNext(count: number): void {
    this.#commitThenFail = count;
  }

  /** Delays every call (by the timers in use, so fake timers control it). */
  setLatency(ms: number): void {
    this.#latencyMs = ms;
  }

  poison(key: string): void {
    this.#poisoned.add(key);
  }

  isPoisoned(key: string): boolean {
    return this.#poisoned.has(key);
  }

  heal(): void {
    this.#down = false;
    this.#failNext = 0;
    this.#commitThenFail = 0;
    this.#latencyMs = 0;
  }

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    await this.#delay();
    this.#enter();
    return this.inner.getMany(keys, opts);
  }

  async apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    await this.#delay();
    this.#enter();
    const accepted = writes.filter((w) => !this.#poisoned.has(w.key));
    const innerResults = await this.inner.apply(accepted, opts);
    if (this.#commitThenFail > 0) {
      this.#commitThenFail--;
      throw new TransientStorageError('answer lost after commit (injected)');
    }
    let next = 0;
    return writes.map((w) =>
      this.#poisoned.has(w.key)
        ? { status: 'rejected', error: new PermanentStorageError(`poisoned key ${w.key} (injected)`) }
        : (innerResults[next++] as ApplyResult),
    );
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    await this.#delay();
    this.#enter();
    return this.inner.highWaterMark(opts);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }

  async #delay(): Promise<void> {
    if (this.#latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#latencyMs));
  }

  #enter(): void {
    if (this.#down) throw new TransientStorageError('store down (injected)');
    if (this.#failNext > 0) {
      this.#failNext--;
      throw new TransientStorageError('call failed (injected)');
    }
  }
}

/**
 * The next `times` apply calls to `storage` return `answer(writes)` without writing anything (an
 * adapter breaking its contract); later calls go through.
 */
export function misanswerApply(
  storage: Storage,
  times: number,
  answer: (writes: VersionedWrite[]) => unknown,
): void {
  const apply = storage.apply.bind(storage);
  let left = times;
  storage.apply = async (writes, options) => {
    if (left <= 0) return apply(writes, options);
    left--;
    return answer(writes) as ApplyResult[];
  };
}
