/**
 * Heap measurements in a fresh `node --expose-gc` process, so nothing else the bench did is on the
 * heap. Prints the figures as one JSON line. Started by bench/cases/memory.ts.
 */
import { LRUCache } from 'lru-cache';
import { ConversationStore } from '../../src/conversation/index.js';
import type { Storage } from '../../src/index.js';
import { benchCache, type Figure } from '../lib/case.js';
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

function bytesFigure(
  id: string,
  label: string,
  bytes: number,
  details: Figure['details'],
  baseline?: string,
): Figure {
  return { id, label, value: bytes, unit: 'bytes', baseline, details };
}

async function filledCache(storage: Storage, n: number) {
  const cache = await benchCache({ storage, maxEntries: n + 1 });
  for (const [key, value] of makeEntries(n)) await cache.set(key, value);
  return cache;
}

async function perEntry(n: number): Promise<Figure[]> {
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
  const perEntry = { entries: n };
  const entryJson = JSON.stringify(makeEntries(1)[0]?.[1]).length;
  return [
    bytesFigure(
      'memory.lru-raw',
      'raw lru-cache holding the parsed objects (baseline)',
      lru.bytes / n,
      perEntry,
    ),
    bytesFigure(
      'memory.hybrid-parsed',
      'hybrid-cache, clean entries after a read (parsed object kept, JSON dropped)',
      (clean.bytes + parsed.bytes) / n,
      perEntry,
      'memory.lru-raw',
    ),
    bytesFigure(
      'memory.hybrid-clean',
      'hybrid-cache, clean entries never read since the write (JSON text kept)',
      clean.bytes / n,
      perEntry,
      'memory.lru-raw',
    ),
    bytesFigure(
      'memory.hybrid-dirty',
      'hybrid-cache, dirty entries (written, not yet flushed)',
      dirty.bytes / n,
      perEntry,
      'memory.lru-raw',
    ),
    bytesFigure('memory.entry-json', 'serialized size of one value (JSON)', entryJson, perEntry),
  ];
}

/** ConversationStore over hybrid-cache, 50 turns a thread, flushed; then every thread read once. */
async function perThread(count: number): Promise<Figure[]> {
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
      const id = await store.createThread({ tool_name: 'chat' });
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
  const perThread = { threads: count };
  return [
    bytesFigure(
      'conversation.memory-per-thread',
      'heap per 50-turn thread, flushed, as left by addTurn',
      threads.bytes / count,
      perThread,
      'conversation.thread-json',
    ),
    bytesFigure(
      'conversation.memory-per-thread-parsed',
      'heap per 50-turn thread after one getThread (parsed object kept)',
      (threads.bytes + parsed.bytes) / count,
      perThread,
      'conversation.thread-json',
    ),
    bytesFigure(
      'conversation.thread-json',
      'serialized size of one 50-turn thread (JSON)',
      threadJsonBytes / count,
      perThread,
    ),
  ];
}

const { entries, threads } = JSON.parse(process.argv[2] ?? '{}') as MemoryChildArgs;
const figures = [
  ...(entries > 0 ? await perEntry(entries) : []),
  ...(threads > 0 ? await perThread(threads) : []),
];
process.stdout.write(`${JSON.stringify(figures)}\n`);
