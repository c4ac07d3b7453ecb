import { pino } from 'pino';
import { createHybridCache, type HybridCacheOptions, MemoryStorage, type Storage } from '../../src/index.js';
import { FaultyStorage } from '../../src/testing/index.js';

export const silentLogger = pino({ level: 'silent' });

/** A MemoryStorage behind a fault injector, as most tests use it. */
export function faultyMemory(): FaultyStorage<MemoryStorage> {
  return new FaultyStorage(new MemoryStorage());
}

/** A cache over a fresh faulty MemoryStorage, no outbox, quiet, with small timings suited to fake timers. */
export async function memoryCache<V = unknown, S extends Storage = FaultyStorage<MemoryStorage>>(
  overrides: Partial<Omit<HybridCacheOptions, 'storage'>> & { storage?: S } = {},
) {
  const storage = overrides.storage ?? (faultyMemory() as Storage as S);
  const cache = await createHybridCache<V>({
    storage,
    outbox: { durability: 'none' },
    flush: { batchSize: 50, intervalMs: 10, concurrency: 2 },
    retry: { baseMs: 50, maxMs: 1_000 },
    breaker: { failureThreshold: 3, halfOpenAfterMs: 2_000 },
    readTimeoutMs: 500,
    writeTimeoutMs: 500,
    logger: silentLogger,
    ...overrides,
  });
  return { cache, storage };
}

/** Parses the stored JSON of a key, or returns undefined / null for absent / tombstone. */
export function storedValue(storage: MemoryStorage | FaultyStorage<MemoryStorage>, key: string): unknown {
  const entry = (storage instanceof FaultyStorage ? storage.inner : storage).peek(key);
  if (!entry) return undefined;
  return entry.json === null ? null : JSON.parse(entry.json);
}

/**
 * Awaits a promise under fake timers: lets it settle without moving the clock if it can, else
 * advances time in small steps until it settles.
 */
export async function settleWithTimers<T>(promise: Promise<T>, stepMs = 1, maxMs = 120_000): Promise<T> {
  const { vi } = await import('vitest');
  let settled = false;
  promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await vi.advanceTimersByTimeAsync(0);
  for (let elapsed = 0; !settled && elapsed < maxMs; elapsed += stepMs)
    await vi.advanceTimersByTimeAsync(stepMs);
  return promise;
}

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A pino logger at `debug` that keeps every line as a parsed object, for asserting what operators see. */
export function capturingLogger() {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(chunk: string) {
        lines.push(JSON.parse(chunk) as LogLine);
      },
    },
  );
  const at = (level: 'debug' | 'info' | 'warn' | 'error') =>
    lines.filter((l) => l.level === pino.levels.values[level]);
  return { logger, lines, at };
}
