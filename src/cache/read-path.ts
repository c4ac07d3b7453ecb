import type { LogItem, StoredEntry } from '../storage/contract/types.js';
import type { HybridLogicalClock } from '../sync/clock/hlc.js';
import { CorruptValueError, StorageUnavailableError } from './errors.js';
import type { Loader } from './loader.js';
import { type MemoryTier, MISS } from './memory-tier.js';
import type { ValueAndItems } from './types.js';

/**
 * Why a miss asks the store again rather than answering:
 * - `written-during-read`: a local write landed while the read was in flight, and memory may no longer hold it;
 * - `items-settled-unseen`: local items the store took during the read are missing from its answer;
 * - `flushed-during-read`: a local write was flushed during the read, so the answer predates what memory
 *   holds or held when the read began (the write may have been evicted since);
 * - `items-waiting`: the store reads the key as absent but this process's unflushed items may refresh it there;
 * - `value-waiting`: the store reads the key as absent but may hold a value that expired since this
 *   process's unflushed value (whose stored log memory does not know) was written over it while it
 *   was live: that value continues its log, which the store shows once it has the value;
 * - `changed-during-read`: another instance changed the key during the read, and memory holds an
 *   unflushed value of it whose stored log the answer would have supplied.
 *
 * An answer another instance's change outdated without such a value is returned but not kept.
 */
export type AskAgain =
  | 'written-during-read'
  | 'items-settled-unseen'
  | 'flushed-during-read'
  | 'items-waiting'
  | 'value-waiting'
  | 'changed-during-read';

/**
 * A read asks the store at most this often. Each reason to ask again is a local write racing the read,
 * which a second read nearly always outruns; a key written faster than the store answers fails the
 * read with `StorageUnavailableError` rather than looping.
 */
export const MAX_STORE_ASKS = 4;

export interface ReadPathOptions {
  tier: MemoryTier;
  loader: Loader;
  clock: HybridLogicalClock;
  /** Resolves once the key's unflushed writes (items and value) are in the store; rejects past the read timeout. */
  pendingFlushed: (key: string) => Promise<void>;
  /** Hears each time a read asks the store again, and why. */
  onAskAgain?: (key: string, reason: AskAgain) => void;
}

/** The miss path of `get` and `getWithItems`: a bounded loop over store reads, each with a named reason to ask again. */
export class ReadPath {
  readonly #tier: MemoryTier;
  readonly #loader: Loader;
  readonly #clock: HybridLogicalClock;
  readonly #pendingFlushed: (key: string) => Promise<void>;
  readonly #onAskAgain: (key: string, reason: AskAgain) => void;

  constructor(options: ReadPathOptions) {
    this.#tier = options.tier;
    this.#loader = options.loader;
    this.#clock = options.clock;
    this.#pendingFlushed = options.pendingFlushed;
    this.#onAskAgain = options.onAskAgain ?? (() => {});
  }

  async value(key: string): Promise<unknown> {
    for (let ask = 1; ; ask++) {
      // Asked again: the write that overtook the read may have answered it.
      const known = ask > 1 ? this.#tier.lookup(key) : MISS;
      if (known !== MISS) return known;
      const { stored, writtenDuringRead, outdated } = await this.#loader.load(key);
      const again = this.#reasonToAskAgain(key, stored, writtenDuringRead, false, false);
      if (again) {
        await this.#before(ask, key, again);
        continue;
      }
      if (!outdated) this.#learn(key, stored);
      const answer = outdated ? MISS : this.#tier.lookup(key);
      if (answer !== MISS) return answer;
      // Memory did not keep it (larger than the LRU allows): answer from what the store returned.
      return isLive(stored) ? parse(key, stored.json) : undefined;
    }
  }

  async valueWithItems(key: string): Promise<ValueAndItems<unknown> | undefined> {
    for (let ask = 1; ; ask++) {
      const known = ask > 1 ? this.#tier.lookupWithLog(key) : MISS;
      if (known !== MISS) return known && { value: known.value, items: known.items };
      const pendingAtRead = this.#tier.pendingLogs.get(key)?.items.slice() ?? [];
      // An unflushed value read for its stored log may be flushed and evicted before the answer
      // comes: then only this remembers that the answer predates it.
      const unflushedAtRead = this.#tier.dirty.get(key)?.version ?? 0;
      const { stored, writtenDuringRead, outdated } = await this.#loader.load(key);
      const unseen = this.#settledUnseen(key, pendingAtRead, stored);
      let again =
        this.#reasonToAskAgain(key, stored, writtenDuringRead, unseen, true) ??
        (outdated && this.#tier.dirty.has(key) ? 'changed-during-read' : undefined) ??
        (unflushedAtRead > (stored?.version ?? 0) && !this.#tier.dirty.has(key)
          ? 'flushed-during-read'
          : undefined);
      if (again) {
        await this.#before(ask, key, again);
        continue;
      }
      if (!outdated) {
        if (stored) this.#learn(key, stored);
        else this.#tier.learnAbsent(key);
      }
      const answer = outdated ? MISS : this.#tier.lookupWithLog(key);
      if (answer !== MISS) return answer && { value: answer.value, items: answer.items };
      again =
        (this.#tier.knownVersion(key) ?? 0) > (stored?.version ?? 0) ? 'flushed-during-read' : undefined;
      if (again) {
        await this.#before(ask, key, again);
        continue;
      }
      // Memory did not keep it (larger than the LRU allows): answer from what the store returned.
      if (!isLive(stored)) return undefined;
      const value = parse(key, stored.json);
      try {
        const items = this.#tier.withPendingItems(key, stored.items ?? []);
        return { value, items: this.#tier.itemValues(items) };
      } catch (error) {
        throw new CorruptValueError(key, { cause: error });
      }
    }
  }

  #reasonToAskAgain(
    key: string,
    stored: StoredEntry | undefined,
    writtenDuringRead: boolean,
    itemsSettledUnseen: boolean,
    withLog: boolean,
  ): AskAgain | undefined {
    if (writtenDuringRead) return 'written-during-read';
    if (itemsSettledUnseen) return 'items-settled-unseen';
    if (isLive(stored)) return undefined;
    if (this.#tier.pendingLogs.has(key)) return 'items-waiting';
    if (withLog && this.#tier.mayContinueHiddenLog(key)) return 'value-waiting';
    return undefined;
  }

  /** Before asking the store again: gives up after the last ask, and waits for the key's unflushed writes to flush when that is the reason. */
  async #before(ask: number, key: string, reason: AskAgain): Promise<void> {
    if (ask >= MAX_STORE_ASKS) throw keptChanging(key, reason);
    this.#onAskAgain(key, reason);
    if (reason === 'items-waiting' || reason === 'value-waiting') await this.#pendingFlushed(key);
  }

  #learn(key: string, stored: StoredEntry | undefined): void {
    if (!stored) return;
    this.#clock.observe(stored.version);
    this.#tier.putLoaded(key, stored);
  }

  /**
   * Items that were unflushed as the read began, have left memory since (the store took or refused
   * them), and are not in what the store answered: the answer predates them.
   */
  #settledUnseen(key: string, pendingAtRead: readonly LogItem[], stored: StoredEntry | undefined): boolean {
    if (pendingAtRead.length === 0) return false;
    const pending = new Set(this.#tier.pendingLogs.get(key)?.items.map((item) => item.id));
    const seen = new Set(stored?.items?.map((item) => item.id));
    return pendingAtRead.some((item) => !pending.has(item.id) && !seen.has(item.id));
  }
}

function keptChanging(key: string, reason: AskAgain): StorageUnavailableError {
  return new StorageUnavailableError(
    `${key} kept changing while it was read: ${MAX_STORE_ASKS} store reads in a row were overtaken by local writes (last: ${reason}); retry the read`,
  );
}

function parse(key: string, json: string | null): unknown {
  try {
    return JSON.parse(json as string);
  } catch (error) {
    throw new CorruptValueError(key, { cause: error });
  }
}

export function isLive(stored: StoredEntry | undefined): stored is StoredEntry {
  return (
    stored !== undefined &&
    stored.json !== null &&
    (stored.expiresAt === null || stored.expiresAt > Date.now())
  );
}
