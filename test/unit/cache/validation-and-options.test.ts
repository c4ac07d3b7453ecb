import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { resolveOptions } from '../../../src/cache/options.js';
import {
  BackpressureError,
  ClosedError,
  createHybridCache,
  FlushTimeoutError,
  HybridCacheError,
  type HybridCacheOptions,
  OutboxError,
  StorageUnavailableError,
  ValidationError,
} from '../../../src/index.js';
import {
  capturingLogger,
  faultyMemory,
  memoryCache,
  settleWithTimers,
  silentLogger,
  storedValue,
} from '../../helpers/cache.js';

/** Bytes a write of the largest value under the longest key counts, besides the value itself. */
const KEY_AND_OVERHEAD_BYTES = 512 + 64;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-validation-'));
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: Error) => error,
  );
}

function create(options: Partial<HybridCacheOptions>): Promise<unknown> {
  return createHybridCache({
    storage: faultyMemory(),
    outbox: { durability: 'none' },
    logger: silentLogger,
    ...options,
  } as HybridCacheOptions);
}

describe('createHybridCache option validation', () => {
  const fn = async () => undefined;
  it.each([
    ['no options at all', undefined],
    ['no storage', { outbox: { durability: 'none' } }],
    ['a storage without apply', { storage: { getMany: fn } }],
    ['a storage without getMany', { storage: { apply: fn } }],
    ['a storage that is not an object', { storage: 'sqlite' }],
  ])('rejects %s with a ValidationError naming the Storage interface', async (_, options) => {
    const error = await rejection(createHybridCache(options as unknown as HybridCacheOptions));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/storage/);
    expect(error.message).toMatch(/getMany/);
    expect(error.message).toMatch(/apply/);
  });

  it.each([
    ['maxEntries', { maxEntries: 0 }],
    ['flush.batchSize', { flush: { batchSize: 1.5 } }],
    ['outbox.durability', { outbox: { durability: 'sometimes' } }],
    ['breaker.halfOpenAfterMs', { breaker: { halfOpenAfterMs: -1 } }],
  ])('rejects a bad %s with a ValidationError naming its path', async (path, options) => {
    const error = await rejection(create(options as Partial<HybridCacheOptions>));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain(`option ${path}:`);
  });

  it.each([
    ['maxEntires', { maxEntires: 5 }, 'unknown option maxEntires (did you mean maxEntries?)'],
    [
      'outbox.durabilty',
      { outbox: { durabilty: 'fsync' } },
      'unknown option outbox.durabilty (did you mean outbox.durability?)',
    ],
    [
      'flush.BatchSize',
      { flush: { BatchSize: 5 } },
      'unknown option flush.BatchSize (did you mean flush.batchSize?)',
    ],
    ['retry.maxMS', { retry: { maxMS: 5 } }, 'unknown option retry.maxMS (did you mean retry.maxMs?)'],
    ['loger', { loger: silentLogger }, 'unknown option loger (did you mean logger?)'],
  ])('rejects the misspelt option %s, suggesting the valid name', async (_, options, message) => {
    const error = await rejection(create(options as Partial<HybridCacheOptions>));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe(message);
  });

  it('rejects an unknown option with nothing close to it, listing the valid ones', async () => {
    const error = await rejection(create({ breaker: { colour: 'red' } } as Partial<HybridCacheOptions>));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe(
      'unknown option breaker.colour; valid options in breaker: failureThreshold, halfOpenAfterMs',
    );
  });

  it.each([
    ['an empty object', {}],
    ['an object missing error', { debug: () => {}, info: () => {}, warn: () => {} }],
    ['a function', console.log],
  ])('rejects a logger that is %s, naming the option', async (_, logger) => {
    const error = await rejection(create({ logger } as unknown as Partial<HybridCacheOptions>));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe(
      'invalid option logger: must be a pino logger (an object with debug, info, warn, error methods)',
    );
  });

  it.each(['process', 'fsync'] as const)(
    "rejects outbox.path ':memory:' with durability %s, which would acknowledge writes that die with the process",
    async (durability) => {
      const error = await rejection(create({ outbox: { path: ':memory:', durability } }));
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.message).toContain(`outbox.path ':memory:'`);
      expect(error.message).toContain(`durability '${durability}'`);
    },
  );

  it("accepts outbox.path ':memory:' with durability none, where no outbox is opened", async () => {
    await expect(create({ outbox: { path: ':memory:', durability: 'none' } })).resolves.toBeDefined();
  });

  it('rejects retry.maxMs below retry.baseMs, and accepts them equal', async () => {
    const error = await rejection(create({ retry: { baseMs: 500, maxMs: 499 } }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/retry/);
    expect(error.message).toMatch(/maxMs/);
    await expect(create({ retry: { baseMs: 500, maxMs: 500 } })).resolves.toBeDefined();
  });

  it('requires maxBytes to hold the largest value plus a longest key and overhead, exactly', async () => {
    const maxValueBytes = 1_000;
    const fits = maxValueBytes + KEY_AND_OVERHEAD_BYTES;
    await expect(create({ maxValueBytes, maxBytes: fits })).resolves.toBeDefined();
    const error = await rejection(create({ maxValueBytes, maxBytes: fits - 1 }));
    expect(error).toBeInstanceOf(ValidationError);
    // States both settings and the room the key and overhead take.
    expect(error.message).toContain(`maxBytes (${fits - 1})`);
    expect(error.message).toContain(`maxValueBytes (${maxValueBytes})`);
    expect(error.message).toContain(String(KEY_AND_OVERHEAD_BYTES));
  });

  it('requires maxPendingBytes to hold the largest write, exactly', async () => {
    const maxValueBytes = 1_000;
    const fits = maxValueBytes + KEY_AND_OVERHEAD_BYTES;
    await expect(create({ maxValueBytes, maxPendingBytes: fits })).resolves.toBeDefined();
    const error = await rejection(create({ maxValueBytes, maxPendingBytes: fits - 1 }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain(`maxPendingBytes (${fits - 1})`);
    expect(error.message).toContain(`maxValueBytes (${maxValueBytes})`);
    expect(error.message).toContain(String(KEY_AND_OVERHEAD_BYTES));
  });

  // Regression: maxPendingBytes equal to maxValueBytes used to be accepted, and then every write of a
  // value near the limit failed with BackpressureError ("retry later") even with an empty backlog.
  it('refuses maxPendingBytes equal to maxValueBytes, which could never take a largest write', async () => {
    await expect(create({ maxValueBytes: 1_000, maxPendingBytes: 1_000 })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(create({ maxValueBytes: 1_001, maxPendingBytes: 1_000 })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it('with the smallest allowed backlog, a largest value under a longest key is accepted', async () => {
    const maxValueBytes = 1_000;
    const { cache, storage } = await memoryCache({
      maxValueBytes,
      maxPendingBytes: maxValueBytes + KEY_AND_OVERHEAD_BYTES,
    });
    storage.goDown();
    const key = 'k'.repeat(512);
    await cache.set(key, 'x'.repeat(maxValueBytes - 2)); // the quotes make it maxValueBytes
    expect(cache.stats()).toMatchObject({ pending: 1, pendingBytes: maxValueBytes + KEY_AND_OVERHEAD_BYTES });
    await expect(cache.set('another', 1)).rejects.toBeInstanceOf(BackpressureError);
  });

  it('logs to stderr as "hybrid-cache" at warn when given no logger', () => {
    const entry = fileURLToPath(new URL('../../../src/index.ts', import.meta.url));
    const testing = fileURLToPath(new URL('../../../src/testing/index.ts', import.meta.url));
    const script = `
      const { createHybridCache, MemoryStorage } = await import(${JSON.stringify(entry)});
      const { FaultyStorage } = await import(${JSON.stringify(testing)});
      const storage = new FaultyStorage(new MemoryStorage());
      storage.goDown();
      const cache = await createHybridCache({ storage, outbox: { durability: 'none' } });
      await cache.set('k', 1);
      await cache.close({ timeoutMs: 50 });
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: process.cwd(),
      encoding: 'utf8',
    });
    expect(child.status).toBe(0);
    expect(child.stdout).toBe('');
    const lines = child.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    // The write lost on close is reported, by name, at warn (40).
    expect(lines).toContainEqual(
      expect.objectContaining({ name: 'hybrid-cache', level: 40, pending: 1, durable: false }),
    );
  });
});

describe('what option validation says', () => {
  const fn = async () => undefined;

  it.each([
    ['apply', { getMany: fn, highWaterMark: fn }],
    ['getMany', { apply: fn, highWaterMark: fn }],
    ['highWaterMark', { getMany: fn, apply: fn }],
    ['getMany and apply', { highWaterMark: fn }],
  ])('rejects a storage without %s, naming the three methods it must have', async (_, storage) => {
    const error = await rejection(create({ storage } as unknown as Partial<HybridCacheOptions>));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe(
      'invalid option storage: must implement the Storage interface (getMany, apply and highWaterMark)',
    );
  });

  it.each([
    ['null', null],
    ['a function, even one with the logging methods', Object.assign(() => {}, silentLogger)],
  ])('rejects a logger that is %s', async (_, logger) => {
    const methods = { debug: fn, info: fn, warn: fn, error: fn };
    const given = typeof logger === 'function' ? Object.assign(logger, methods) : logger;
    const error = await rejection(create({ logger: given } as unknown as Partial<HybridCacheOptions>));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe(
      'invalid option logger: must be a pino logger (an object with debug, info, warn, error methods)',
    );
  });

  it.each([
    ['a string', 'sqlite'],
    ['a number', 42],
  ])('rejects options that are %s, saying what they must be', async (_, options) => {
    const error = await rejection(createHybridCache(options as unknown as HybridCacheOptions));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(
      /^options must be an object whose storage implements the Storage interface/,
    );
  });

  it('rejects an array of options as a problem with the options themselves', async () => {
    const error = await rejection(createHybridCache([] as unknown as HybridCacheOptions));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/^invalid option \(root\): \S/);
  });

  it('rejects a top-level option with nothing close to it, listing every valid one', async () => {
    const error = await rejection(create({ zzzzzzzz: 1 } as Partial<HybridCacheOptions>));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe(
      'unknown option zzzzzzzz; valid options: storage, logger, maxEntries, maxBytes, maxValueBytes, ' +
        'maxPendingBytes, defaultTtlMs, readTimeoutMs, writeTimeoutMs, maxClockAheadMs, maxStalenessMs, feed, ' +
        'flush, retry, breaker, outbox',
    );
  });

  it('names every unknown option of one object, one after the other', async () => {
    const error = await rejection(
      create({ flush: { BatchSize: 5, colour: 'red' } } as unknown as Partial<HybridCacheOptions>),
    );
    expect(error.message).toBe(
      'unknown option flush.BatchSize (did you mean flush.batchSize?); ' +
        'unknown option flush.colour; valid options in flush: batchSize, intervalMs, concurrency',
    );
  });

  it('names every bad option, one after the other', async () => {
    const error = await rejection(create({ maxEntries: 0, flush: { batchSize: 1.5 } }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(
      /^invalid option maxEntries: [^;]+; invalid option flush\.batchSize: [^;]+$/,
    );
  });

  it('without a logger, logs as "hybrid-cache" at warn level', () => {
    const { logger } = resolveOptions({ storage: faultyMemory(), outbox: { durability: 'none' } });
    expect(logger.level).toBe('warn');
    expect(logger.bindings()).toMatchObject({ name: 'hybrid-cache' });
  });
});

describe('error classes', () => {
  it('are exported, extend HybridCacheError and carry a stable code', async () => {
    vi.useFakeTimers();
    const { cache, storage } = await memoryCache({ maxValueBytes: 1_000, maxPendingBytes: 2_000 });

    const validation = await rejection(cache.set('', 1));
    expect(validation).toBeInstanceOf(ValidationError);
    expect(validation).toMatchObject({ code: 'ERR_VALIDATION', name: 'ValidationError' });

    storage.goDown();
    const unavailable = await rejection(settleWithTimers(cache.get('never-written')));
    expect(unavailable).toBeInstanceOf(StorageUnavailableError);
    expect(unavailable).toMatchObject({ code: 'ERR_STORAGE_UNAVAILABLE', name: 'StorageUnavailableError' });

    await cache.set('a', 'x'.repeat(998)); // 1_000 bytes + key + overhead
    const backpressure = await rejection(cache.set('b', 'x'.repeat(998)));
    expect(backpressure).toBeInstanceOf(BackpressureError);
    expect(backpressure).toMatchObject({
      code: 'ERR_BACKPRESSURE',
      name: 'BackpressureError',
      pendingBytes: cache.stats().pendingBytes,
      maxPendingBytes: 2_000,
    });

    await cache.set('c', 1);
    const timeout = await rejection(settleWithTimers(cache.flush({ timeoutMs: 100 })));
    expect(timeout).toBeInstanceOf(FlushTimeoutError);
    expect(timeout).toMatchObject({ code: 'ERR_FLUSH_TIMEOUT', name: 'FlushTimeoutError', pending: 2 });
    expect(timeout.message).toMatch(/\b2\b/);

    await settleWithTimers(cache.close({ timeoutMs: 100 }));
    const closed = await rejection(cache.get('a'));
    expect(closed).toBeInstanceOf(ClosedError);
    expect(closed).toMatchObject({ code: 'ERR_CLOSED', name: 'ClosedError' });
    expect(closed.message).toMatch(/closed/);

    for (const error of [validation, unavailable, backpressure, timeout, closed]) {
      expect(error).toBeInstanceOf(HybridCacheError);
    }
  });

  it('reports an outbox that cannot be opened as ERR_OUTBOX', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    const error = await rejection(memoryCache({ outbox: { path, durability: 'process' } }));
    expect(error).toBeInstanceOf(OutboxError);
    expect(error).toBeInstanceOf(HybridCacheError);
    expect(error).toMatchObject({ code: 'ERR_OUTBOX', name: 'OutboxError' });
    await first.cache.close();
  });

  it('ClosedError says the cache is closed by default', () => {
    expect(new ClosedError().message).toMatch(/closed/);
  });
});

describe('key validation', () => {
  it.each([
    [123, '123'],
    [null, 'null'],
    [undefined, 'undefined'],
    [true, 'boolean'],
    [{}, 'object'],
  ])('rejects the non-string key %s, saying what it got', async (key, described) => {
    const { cache } = await memoryCache();
    for (const call of [() => cache.get(key as string), () => cache.set(key as string, 1)]) {
      const error = await rejection(call());
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.message).toMatch(/string/);
      expect(error.message).toMatch(new RegExp(`\\b${described}$`));
    }
  });

  it('rejects an empty key, saying so', async () => {
    const { cache } = await memoryCache();
    const error = await rejection(cache.set('', 1));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/empty/);
  });

  it('accepts a key of exactly 512 UTF-8 bytes and rejects 513, stating both sizes', async () => {
    const { cache, storage } = await memoryCache();
    await cache.set('é'.repeat(256), 'two-byte'); // 512 bytes in 256 UTF-16 units
    await cache.set(`${'€'.repeat(170)}ab`, 'three-byte'); // 512 bytes
    for (const key of [`${'é'.repeat(256)}a`, '€'.repeat(171), 'k'.repeat(513)]) {
      const error = await rejection(cache.set(key, 1));
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.message).toContain('513');
      expect(error.message).toContain('512');
    }
    await cache.flush();
    expect(storedValue(storage, 'é'.repeat(256))).toBe('two-byte');
    expect(storedValue(storage, `${'€'.repeat(170)}ab`)).toBe('three-byte');
  });

  it('rejects a key containing NUL, saying so, and writes nothing', async () => {
    const { cache, storage } = await memoryCache();
    const error = await rejection(cache.set('a\u0000b', 1));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/NUL/);
    await expect(cache.get('a\u0000b')).rejects.toBeInstanceOf(ValidationError);
    await cache.flush();
    expect(cache.stats().pending).toBe(0);
    expect(storage.calls.apply).toBe(0);
  });

  it('explains a rejected lone surrogate', async () => {
    const { cache } = await memoryCache();
    const error = await rejection(cache.set('a\uD800', 1));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/surrogate/);
  });
});

describe('TTL validation', () => {
  it.each([
    [-1, '-1'],
    [-Number.MIN_VALUE, '-5e-324'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [Number.NEGATIVE_INFINITY, '-Infinity'],
    ['5', 'string'],
    [null, 'null'],
  ])('rejects ttlMs %s, saying what it got, and changes nothing', async (ttlMs, described) => {
    const { cache } = await memoryCache();
    await cache.set('k', 'before');
    const error = await rejection(cache.set('k', 'after', { ttlMs: ttlMs as number }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/ttlMs/);
    expect(error.message.endsWith(` ${described}`)).toBe(true);
    expect(await cache.get('k')).toBe('before');
  });

  it('names the TTL that puts the expiry out of range', async () => {
    const { cache } = await memoryCache();
    const error = await rejection(cache.set('k', 'v', { ttlMs: 1e300 }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain('1e+300');
  });
});

describe('value validation', () => {
  it('passes on why a value could not be serialised', async () => {
    const { cache } = await memoryCache();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const error = await rejection(cache.set('k', circular));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(/circular/i);
  });

  it.each([
    [undefined, 'undefined'],
    [() => 1, 'function'],
    [Symbol('s'), 'symbol'],
  ])('rejects %s, which has no JSON form, naming its type', async (value, type) => {
    const { cache } = await memoryCache();
    const error = await rejection(cache.set('k', value));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toMatch(new RegExp(`\\b${type}$`));
    expect(cache.stats().pending).toBe(0);
  });

  it('accepts a value of exactly maxValueBytes and rejects one byte more, stating both', async () => {
    const { cache } = await memoryCache({ maxValueBytes: 100 });
    await cache.set('ascii', 'x'.repeat(98)); // "…" is 100 bytes
    const error = await rejection(cache.set('ascii', 'x'.repeat(99)));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain('101');
    expect(error.message).toContain('100');
    expect(await cache.get('ascii')).toBe('x'.repeat(98));
  });

  it('counts multi-byte characters in UTF-8 bytes against maxValueBytes', async () => {
    const { cache } = await memoryCache({ maxValueBytes: 100 });
    await cache.set('two', 'é'.repeat(49)); // 51 UTF-16 units, 100 bytes
    const two = await rejection(cache.set('two', 'é'.repeat(50))); // 52 units, 102 bytes
    expect(two).toBeInstanceOf(ValidationError);
    expect(two.message).toContain('102');
    await cache.set('three', `${'€'.repeat(32)}x`); // 35 units, 99 bytes
    const three = await rejection(cache.set('three', '€'.repeat(33))); // 35 units, 101 bytes
    expect(three).toBeInstanceOf(ValidationError);
    expect(three.message).toContain('101');
    const four = await rejection(cache.set('four', '😀'.repeat(25))); // 52 units, 102 bytes
    expect(four).toBeInstanceOf(ValidationError);
    expect(await cache.get('two')).toBe('é'.repeat(49));
    expect(await cache.get('three')).toBe(`${'€'.repeat(32)}x`);
    expect(await cache.get('four')).toBeUndefined();
  });
});

describe('expiry', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });

  it('an unflushed entry reads as absent from the very millisecond it expires', async () => {
    const { cache, storage } = await memoryCache();
    storage.goDown(); // keep it dirty
    await cache.set('k', 'v', { ttlMs: 1_000 });
    await vi.advanceTimersByTimeAsync(999);
    expect(await cache.get('k')).toBe('v');
    await vi.advanceTimersByTimeAsync(1);
    expect(await cache.get('k')).toBeUndefined();
    expect(cache.stats().pending).toBe(1);
  });

  it('a flushed entry reads as absent from the very millisecond it expires', async () => {
    const { cache, storage } = await memoryCache();
    const expiresAt = Date.now() + 10_000;
    await cache.set('k', 'v', { ttlMs: 10_000 });
    await settleWithTimers(cache.flush());
    expect(storage.inner.peek('k')?.expiresAt).toBe(expiresAt);
    vi.setSystemTime(expiresAt - 1);
    expect(await cache.get('k')).toBe('v');
    expect(cache.stats()).toMatchObject({ pending: 0, misses: 0 });
    vi.setSystemTime(expiresAt);
    expect(await settleWithTimers(cache.get('k'))).toBeUndefined();
  });
});

describe('values read back', () => {
  it('flushes exactly what was written, even if the caller mutates an object it read back', async () => {
    vi.useFakeTimers();
    const { cache, storage } = await memoryCache();
    storage.goDown();
    await cache.set('k', { list: [1] });
    const read = (await cache.get('k')) as { list: number[] };
    read.list.push(2);
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'k')).toEqual({ list: [1] });
  });
});

describe('replay on start', () => {
  it('logs at info how many unflushed writes it replayed from the outbox', async () => {
    const path = join(dir, 'outbox.db');
    const first = await memoryCache({ outbox: { path, durability: 'process' } });
    first.storage.goDown();
    await first.cache.set('a', 1);
    await first.cache.delete('b');
    expect(await first.cache.close({ timeoutMs: 10 })).toEqual({ pending: 2, drained: false });

    const log = capturingLogger();
    const second = await memoryCache({
      outbox: { path, durability: 'process' },
      storage: first.storage,
      logger: log.logger,
    });
    const replays = log.lines.filter((line) => 'replayed' in line);
    expect(replays).toHaveLength(1);
    expect(replays[0]).toMatchObject({ replayed: 2 });
    expect(log.at('info')).toContain(replays[0]);
    expect(replays[0]?.msg).toMatch(/replay/);
    await second.cache.close({ timeoutMs: 10 });
  });

  it('logs no replay when the outbox held nothing', async () => {
    const log = capturingLogger();
    const { cache } = await memoryCache({
      outbox: { path: join(dir, 'fresh.db'), durability: 'process' },
      logger: log.logger,
    });
    expect(log.lines.filter((line) => 'replayed' in line || /replay/.test(line.msg))).toEqual([]);
    await cache.close();
  });
});

describe('memory accounting of non-ASCII values', () => {
  it('counts a value the same whether it was set here or loaded from the store', async () => {
    const storage = faultyMemory();
    const value = 'é'.repeat(400); // 402 UTF-16 units of JSON, 802 UTF-8 bytes: past the fast path
    const { cache: writer } = await memoryCache({ storage, maxValueBytes: 1_000 });
    await writer.set('k', value);
    const pendingBytes = writer.stats().pendingBytes;
    await writer.flush();
    expect(writer.stats().bytes).toBe(pendingBytes);

    const { cache: reader } = await memoryCache({ storage, maxValueBytes: 1_000 });
    expect(await reader.get('k')).toBe(value);
    expect(reader.stats().bytes).toBe(pendingBytes);
  });
});
