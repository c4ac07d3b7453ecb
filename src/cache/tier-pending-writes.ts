import type { VersionedWrite } from '../storage/types.js';
import type { PendingWrites } from '../sync/pending-writes.js';
import { entryJson } from './entry.js';
import type { MemoryTier } from './memory-tier.js';

export interface FlushCounters {
  flushedWrites: number;
  deadLetters: number;
  superseded: number;
}

/** The flusher's view of the memory tier's dirty entries: what to send, and what became of it. */
export class TierPendingWrites implements PendingWrites {
  readonly #tier: MemoryTier;
  readonly #counters: FlushCounters;
  readonly #onReminted: (key: string, version: number) => void;

  /** `onReminted` hears of each new version given to a write, as of a new local write. */
  constructor(tier: MemoryTier, counters: FlushCounters, onReminted: (key: string, version: number) => void) {
    this.#tier = tier;
    this.#counters = counters;
    this.#onReminted = onReminted;
  }

  latest(key: string): VersionedWrite | undefined {
    const entry = this.#tier.dirty.get(key);
    if (!entry) return undefined;
    return { key, version: entry.version, json: entryJson(entry), expiresAt: entry.expiresAt };
  }

  isPending(key: string): boolean {
    return this.#tier.dirty.has(key);
  }

  reminted(key: string, from: number, to: number): void {
    this.#tier.reversion(key, from, to);
    this.#onReminted(key, to);
  }

  applied(key: string, version: number): void {
    this.#counters.flushedWrites++;
    this.#tier.settle(key, version);
  }

  alreadyStored(key: string, version: number): void {
    this.#tier.settle(key, version);
  }

  superseded(key: string, version: number): boolean {
    if (!this.#tier.discard(key, version)) return false;
    this.#counters.superseded++;
    return true;
  }

  deadLettered(key: string, version: number): void {
    this.#tier.discard(key, version);
    this.#counters.deadLetters++;
  }
}
