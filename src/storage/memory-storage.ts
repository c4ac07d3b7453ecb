import { PermanentStorageError, TransientStorageError } from './errors.js';
import type { ApplyResult, Storage, StorageCallOptions, StoredEntry, VersionedWrite } from './types.js';
import { versionTimeMs } from './version.js';

type FaultKind = 'transient' | 'permanent';

/**
 * An in-process store with last-writer-wins by version. Also the test double for faults: every
 * fault a real store shows (down, slow, failing, poison keys, a commit whose answer is lost) can be
 * switched on here.
 */
export class MemoryStorage implements Storage {
  readonly #entries = new Map<string, StoredEntry>();
  readonly #rejectedKeys = new Map<string, string>();
  #failNext: { count: number; kind: FaultKind } = { count: 0, kind: 'transient' };
  #commitThenFail = 0;
  #latencyMs = 0;
  #down = false;

  /** Calls made, for tests that count round trips. */
  readonly calls = { getMany: 0, apply: 0, writesApplied: 0, highWaterMark: 0 };

  async getMany(keys: string[], opts?: StorageCallOptions): Promise<Map<string, StoredEntry>> {
    this.calls.getMany++;
    await this.#enter(opts?.signal);
    const found = new Map<string, StoredEntry>();
    const now = Date.now();
    for (const key of keys) {
      const entry = this.#entries.get(key);
      if (!entry) continue;
      if (entry.json !== null && entry.expiresAt !== null && entry.expiresAt <= now) continue;
      found.set(key, { ...entry });
    }
    return found;
  }

  async apply(writes: VersionedWrite[], opts?: StorageCallOptions): Promise<ApplyResult[]> {
    this.calls.apply++;
    await this.#enter(opts?.signal);
    const results = writes.map((write) => this.#applyOne(write));
    if (this.#commitThenFail > 0) {
      this.#commitThenFail--;
      throw new TransientStorageError('connection lost after commit (injected)');
    }
    return results;
  }

  async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    this.calls.highWaterMark++;
    await this.#enter(opts?.signal);
    let highest = 0;
    for (const entry of this.#entries.values()) if (entry.version > highest) highest = entry.version;
    return highest;
  }

  async close(): Promise<void> {}

  // --- fault controls -------------------------------------------------------------------------

  /** The next `count` calls fail as a whole, before touching any data. */
  failNext(count: number, kind: FaultKind = 'transient'): void {
    this.#failNext = { count, kind };
  }

  /** Every write to `key` is rejected permanently (a poison item); the rest of its batch lands. */
  rejectKey(key: string, reason = 'rejected by store (injected)'): void {
    this.#rejectedKeys.set(key, reason);
  }

  acceptKey(key: string): void {
    this.#rejectedKeys.delete(key);
  }

  /** Delay every call by `ms` (abortable through the call's signal). */
  setLatency(ms: number): void {
    this.#latencyMs = ms;
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

  /** The next `count` apply calls commit their writes, then fail as if the answer were lost. */
  commitThenFailNext(count = 1): void {
    this.#commitThenFail = count;
  }

  // --- inspection for tests ----------------------------------------------------------------------

  /** The raw stored entry, tombstones and expired entries included. */
  peek(key: string): StoredEntry | undefined {
    const entry = this.#entries.get(key);
    return entry && { ...entry };
  }

  /** All stored keys with their raw entries. */
  dump(): Map<string, StoredEntry> {
    return new Map([...this.#entries].map(([k, v]) => [k, { ...v }]));
  }

  /** Removes tombstones older than `retentionMs` (by version time) and expired entries. */
  cleanup(retentionMs = 0): number {
    const now = Date.now();
    let removed = 0;
    for (const [key, entry] of this.#entries) {
      const expired = entry.json !== null && entry.expiresAt !== null && entry.expiresAt <= now;
      const oldTombstone = entry.json === null && versionTimeMs(entry.version) <= now - retentionMs;
      if (expired || oldTombstone) {
        this.#entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  #applyOne(write: VersionedWrite): ApplyResult {
    const reason = this.#rejectedKeys.get(write.key);
    if (reason !== undefined) return { status: 'rejected', error: new PermanentStorageError(reason) };
    const stored = this.#entries.get(write.key);
    if (stored && stored.version >= write.version) return { status: 'stale', storedVersion: stored.version };
    this.#entries.set(write.key, { version: write.version, json: write.json, expiresAt: write.expiresAt });
    this.calls.writesApplied++;
    return { status: 'applied' };
  }

  async #enter(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (this.#latencyMs > 0) await abortableDelay(this.#latencyMs, signal);
    if (this.#down) throw new TransientStorageError('store unreachable (injected)');
    if (this.#failNext.count > 0) {
      this.#failNext.count--;
      if (this.#failNext.kind === 'permanent') throw new PermanentStorageError('call rejected (injected)');
      throw new TransientStorageError('call failed (injected)');
    }
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
