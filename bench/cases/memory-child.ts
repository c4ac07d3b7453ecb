/**
 * Heap measurements in a fresh `node --expose-gc` process, so nothing else the bench did is on the
 * heap. Prints one JSON line. Started by bench/cases/memory.ts.
 */
import { LRUCache } from 'lru-cache';
import { ConversationStore, type Storage } from '../../src/index.js';
import { benchCache } from '../lib/case.js';
import { prng, smallValue, threadTurns } from '../lib/data.js';
import { NullStorage, ParkedStorage } from '../support/storages.js';

export interface MemoryChildArgs {
  entries: number;
  threads: number;
}

/** Heap bytes per entry (when `entries` > 0) and per conversation thread (when `threads` > 0). */
export interface MemoryChildResult {
  perEntry?: {
    lruRaw: number;
    hybridDirty: number;
    hybridClean: number;
    hybridParsed: number;
    entryJson: number;
  };
  perThread?: { hybrid: number; hybridParsed: number; threadJsonBytes: number };
}

function heap(): number {
  for (let i = 0; i < 4; i++) (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

/**
 * What a measurement built stays reachable from here until `release()`: V8 drops an async
 * function's locals that are dead across an `await`, so a structure held only by a local could be
 * collected in the middle of a later measurement and skew its delta.
 */
const retained: unknown[] = [];
const release = () => {
  retained.length = 0;
};

async function measure<T>(build: () => Promise<T> | T): Promise<{ bytes: number; held: T }> {
  const before = heap();
  const held = await build();
  retained.push(held);
  return { bytes: heap() - before, held };
}

/**
 * Keys and ~200-byte values, through JSON once so every structure holds the same compact objects
 * (a generated object can pin larger strings it was sliced from; a parsed one cannot).
 */
function makeEntries(n: number): Array<[string, object]> {
  const random = prng(7);
  return Array.from({ length: n }, (_, i) => [
    `user:${i}:profile`,
    JSON.parse(JSON.stringify(smallValue(random, i))),
  ]);
}

async function filledCache(storage: Storage, n: number) {
  const cache = await benchCache({ storage, maxEntries: n + 1 });
  for (const [key, value] of makeEntries(n)) await cache.set(key, value);
  return cache;
}

async function perEntry(n: number): Promise<MemoryChildResult['perEntry']> {
  const lru = await measure(() => {
    const cache = new LRUCache<string, object>({ max: n + 1 });
    for (const [key, value] of makeEntries(n)) cache.set(key, value);
    return cache;
  });
  release();
  // Dirty: written, never flushed (the store never answers).
  const dirty = await measure(() => filledCache(new ParkedStorage(), n));
  await dirty.held.close({ timeoutMs: 1 });
  release();
  // Clean: flushed (the store keeps nothing), then every entry read once.
  const clean = await measure(async () => {
    const cache = await filledCache(new NullStorage(), n);
    await cache.flush();
    return cache;
  });
  const keys = makeEntries(n).map(([key]) => key);
  retained.push(keys);
  const parsed = await measure(async () => {
    let read = 0;
    for (const key of keys) if ((await clean.held.get(key)) !== undefined) read++;
    return read;
  });
  if (parsed.held !== n || clean.held.stats().entries !== n) throw new Error('memory: entries were evicted');
  await clean.held.close();
  release();
  return {
    lruRaw: lru.bytes / n,
    hybridDirty: dirty.bytes / n,
    hybridClean: clean.bytes / n,
    hybridParsed: (clean.bytes + parsed.bytes) / n,
    entryJson: JSON.stringify(makeEntries(1)[0]?.[1]).length,
  };
}

/** ConversationStore over hybrid-cache, 50 turns a thread, flushed; then every thread read once. */
async function perThread(count: number): Promise<MemoryChildResult['perThread']> {
  const threads = await measure(async () => {
    const cache = await benchCache({
      storage: new NullStorage(),
      maxEntries: 10_000,
      maxBytes: 2 ** 31,
      maxPendingBytes: 2 ** 31,
    });
    const store = new ConversationStore({ cache });
    const ids: string[] = [];
    for (let t = 0; t < count; t++) {
      const id = await store.createThread({ toolName: 'chat' });
      for (const turn of threadTurns(t)) await store.addTurn(id, turn);
      ids.push(id);
    }
    await cache.flush();
    return { cache, store, ids };
  });
  retained.push(threads.held.ids);
  let threadJsonBytes = 0;
  const parsed = await measure(async () => {
    for (const id of threads.held.ids) {
      threadJsonBytes += JSON.stringify(await threads.held.store.getThread(id)).length;
    }
  });
  await threads.held.cache.close();
  release();
  return {
    hybrid: threads.bytes / count,
    hybridParsed: (threads.bytes + parsed.bytes) / count,
    threadJsonBytes: threadJsonBytes / count,
  };
}

const args = JSON.parse(process.argv[2] ?? '{}') as MemoryChildArgs;
const result: MemoryChildResult = {
  perEntry: args.entries > 0 ? await perEntry(args.entries) : undefined,
  perThread: args.threads > 0 ? await perThread(args.threads) : undefined,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
