/**
 * The write-behind half's vocabulary: what it reports and parks. Defined here, below the cache, so
 * the cache re-exports these names rather than the flusher reaching up for them.
 */

export type Durability = 'none' | 'process' | 'fsync';
export type Health = 'healthy' | 'degraded' | 'offline';

export interface DeadLetter {
  key: string;
  version: number;
  /** Serialized value, or `null` for a delete. */
  json: string | null;
  expiresAt: number | null;
  /** Set for an appended item (then `version` and `json` are the item's): items are dead-lettered one by one. */
  itemId?: string;
  error: string;
  failedAt: number;
}

/**
 * A local write lost to a newer write from elsewhere: the store answered that it holds a higher
 * version for the key than the one this process sent, after this process's clock had observed the
 * store's high-water mark. Memory forgets the local value; the next read returns the stored one.
 */
export interface SupersededWrite {
  key: string;
  /** Version of the local write that lost. */
  localVersion: number;
  /** Version the store holds. */
  storedVersion: number;
}

/** What the flusher reports, by event name. */
export interface FlushEvents {
  flushed: { count: number; keys: string[] };
  superseded: SupersededWrite;
  retry: { attempt: number; delayMs: number; error: Error };
  deadLetter: DeadLetter;
}

/** Where the flusher reports to. */
export interface FlushEventSink {
  /** Whether anyone listens: payloads that cost something to build (key arrays) are built only then. */
  wants(event: keyof FlushEvents): boolean;
  /** Delivers an event; must not throw (a throwing listener would skip what follows the emit). */
  emit<E extends keyof FlushEvents>(event: E, payload: FlushEvents[E]): void;
}
