import type {
  ApplyResult,
  Storage,
  StorageCallOptions,
  StoredEntry,
  VersionedWrite,
} from '../../src/index.js';

/** Accepts every write and keeps nothing: isolates the cache's own costs (CPU, memory). */
export class NullStorage implements Storage {
  async getMany(): Promise<Map<string, StoredEntry>> {
    return new Map();
  }

  async apply(writes: VersionedWrite[]): Promise<ApplyResult[]> {
    return writes.map(() => ({ status: 'applied' }));
  }

  async highWaterMark(): Promise<number> {
    return 0;
  }
}

/** Never answers a write until the call is aborted (the cache closing): keeps writes pending. */
export class ParkedStorage extends NullStorage {
  override apply(_writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    return new Promise((_resolve, reject) => {
      const signal = opts?.signal;
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }
}

/** Counts the writes and value bytes that reach an inner store. */
export class CountingStorage implements Storage {
  readonly counts = { applyCalls: 0, writes: 0, valueBytes: 0 };
  readonly #inner: Storage;

  constructor(inner: Storage) {
    this.#inner = inner;
  }

  getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    return this.#inner.getMany(keys, opts);
  }

  apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    this.counts.applyCalls++;
    this.counts.writes += writes.length;
    for (const write of writes) {
      this.counts.valueBytes += write.json === null ? 0 : Buffer.byteLength(write.json);
      for (const item of write.items ?? []) this.counts.valueBytes += Buffer.byteLength(item.json);
    }
    return this.#inner.apply(writes, opts);
  }

  highWaterMark(opts?: StorageCallOptions): Promise<number> {
    return this.#inner.highWaterMark(opts);
  }

  async close(): Promise<void> {
    await this.#inner.close?.();
  }
}
