/**
 * Heap measurements in a fresh process started with --expose-gc (so nothing else the bench did is
 * on the heap). Prints one JSON line with the results. Run by bench/cases/memory.ts.
 */
import { LRUCache } from 'lru-cache';
import { ConversationStore, createHybridCache } from '../../src/index.js';
import { threadTurns } from '../lib/conversation-data.js';
import { prng, silentLogger, smallValue } from '../lib/harness.js';
import { NullStorage, ParkedStorage } from '../support/storages.js';

export interface MemoryChildArgs {
  entries: number;
  threads: number;
}

export interface MemoryChildResult {
  /** Bytes of heap per entry, by structure (when `entries` > 0). */
  perEntry?: { lruRaw: number; hybridDirty: number; hybridClean: number; hybridParsed: number };
  entryJsonBytes?: number;
  /** Bytes of heap per conversation thread (when `threads` > 0). */
  perThread?: { hybrid: number; hybridParsed: number; threadJsonBytes: number };
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('memory-child needs --expose-gc');

function heap(): number {
  for (let i = 0; i < 4; i++) gc?.();
  return process.memoryUsage().heapUsed;
}

/**
 * What a measurement built stays reachable from here until `release()`: V8 drops locals of an async
 * function that are dead across an `await`, so a structure referenced only by a local could be
 * collected in the middle of a later measurement and skew its delta.
 */
const retained: unknown[] = [];

function release(): void {
  retained.length = 0;
}

async function measure<T>(build: () => Promise<T> | T): Promise<{ bytes: number; held: T }> {
  const before = heap();
  const held = await build();
  retained.push(held);
  const after = heap();
  return { bytes: after - before, held };
}

/**
 * Keys and ~200-byte values. Values go through JSON once so both structures hold the same compact
 * objects (a generated object can pin larger strings it was sliced from; a parsed one cannot).
 */
function makeEntries(n: number): Array<[string, object]> {
  const random = prng(7);
  return Array.from({ length: n }, (_, i) => [
    `user:${i}:profile`,
    JSON.parse(JSON.stringify(smallValue(random, i))),
  ]);
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as MemoryChildArgs;
  const result: MemoryChildResult = {};
  if (args.entries > 0) Object.assign(result, await perEntry(args.entries));
  if (args.threads > 0) result.perThread = await perThread(args.threads);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function perEntry(n: number): Promise<Pick<MemoryChildResult, 'perEntry' | 'entryJsonBytes'>> {
  // Raw lru-cache holding the parsed objects (keys and values built inside the measurement).
  const lru = await measure(() => {
    const cache = new LRUCache<string, object>({ max: n + 1 });
    for (const [key, value] of makeEntries(n)) cache.set(key, value);
    return cache;
  });
  const lruBytes = lru.bytes;
  release();

  // hybrid-cache, dirty: written, not flushed (the store never answers).
  const dirty = await measure(async () => {
    const cache = await createHybridCache<object>({
      storage: new ParkedStorage(),
      outbox: { durability: 'none' },
      maxEntries: n + 1,
      logger: silentLogger,
    });
    for (const [key, value] of makeEntries(n)) await cache.set(key, value);
    return cache;
  });
  await dirty.held.close({ timeoutMs: 1 });
  release();

  // hybrid-cache, clean: flushed (the store keeps nothing), then every entry read once.
  const clean = await measure(async () => {
    const cache = await createHybridCache<object>({
      storage: new NullStorage(),
      outbox: { durability: 'none' },
      maxEntries: n + 1,
      logger: silentLogger,
    });
    for (const [key, value] of makeEntries(n)) await cache.set(key, value);
    await cache.flush();
    return cache;
  });
  const keys = makeEntries(n).map(([key]) => key);
  retained.push(keys);
  const beforeParse = heap();
  let read = 0;
  for (const key of keys) if ((await clean.held.get(key)) !== undefined) read++;
  const parsedDelta = heap() - beforeParse;
  if (read !== n || clean.held.stats().entries !== n) throw new Error('memory: entries were evicted');
  const entryJsonBytes = JSON.stringify(makeEntries(1)[0]?.[1]).length;
  await clean.held.close();
  release();
  return {
    perEntry: {
      lruRaw: lruBytes / n,
      hybridDirty: dirty.bytes / n,
      hybridClean: clean.bytes / n,
      hybridParsed: (clean.bytes + parsedDelta) / n,
    },
    entryJsonBytes,
  };
}

async function perThread(count: number): Promise<NonNullable<MemoryChildResult['perThread']>> {
  // Conversation threads: ConversationStore over hybrid-cache, 50 turns each, flushed.
  const threads = await measure(async () => {
    const cache = await createHybridCache<object>({
      storage: new NullStorage(),
      outbox: { durability: 'none' },
      maxEntries: 10_000,
      maxBytes: 2 ** 31,
      maxPendingBytes: 2 ** 31,
      logger: silentLogger,
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
  let threadJsonBytes = 0;
  retained.push(threads.held.ids);
  const beforeRead = heap();
  for (const id of threads.held.ids) {
    const thread = await threads.held.store.getThread(id);
    threadJsonBytes += JSON.stringify(thread).length;
  }
  const threadParsedDelta = heap() - beforeRead;
  await threads.held.cache.close();
  release();
  return {
    hybrid: threads.bytes / count,
    hybridParsed: (threads.bytes + threadParsedDelta) / count,
    threadJsonBytes: threadJsonBytes / count,
  };
}

await main();
