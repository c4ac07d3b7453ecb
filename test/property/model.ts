import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { expect, vi } from 'vitest';
import { ABANDON, type HybridCache } from '../../src/cache/hybrid-cache.js';
import {
  createHybridCache,
  FlushTimeoutError,
  type Storage,
  StorageUnavailableError,
} from '../../src/index.js';
import { FaultyStorage } from '../../src/testing/index.js';
import { settleWithTimers, silentLogger } from '../helpers/cache.js';

/**
 * Model-based test of the cache against a plain map with absolute expiry (each key a value and
 * the items appended to it), under store faults, eviction pressure and crash-restarts. Every
 * adapter runs the same commands.
 */

export const KEYS = ['a', 'b', 'c', 'd', 'e'] as const;
type Key = (typeof KEYS)[number];

interface ModelEntry {
  value: unknown;
  expiresAt: number | null;
  /** Items appended while the key was live, in the order they were appended. */
  items: unknown[];
}

export interface Model {
  entries: Map<Key, ModelEntry>;
  poisoned: Set<Key>;
}

export interface Real {
  cache: HybridCache;
  store: FaultyStorage;
  maxEntries: number;
  outboxPath: string;
  restart(): Promise<void>;
  /** Crashes and starts again with an empty outbox at a new path (a new host, or a wiped data dir). */
  restartOnFreshDisk(): Promise<void>;
}

export interface ModelRunOptions {
  /** Whether TTLs and clock jumps may expire entries. */
  expiry: boolean;
  /**
   * The store leaves out of its reads what its own clock shows expired (PostgreSQL's now()), not
   * the cache's. Each run then starts the cache's clock further ahead of the real one than all its
   * commands can step it back, so the store's clock never hides what the cache's shows live; what
   * the store still returns past its expiry, the cache judges by its own clock.
   */
  storeReadsOwnClock?: boolean;
}

const MAX_COMMANDS = 60;
/** The furthest one command steps the clock back (FreshDiskClockBehindCommand). */
const MAX_STEP_BACK_MS = 3_600_000;
/** Ahead of the real clock by more than every command of a run stepping it back its furthest. */
const CLOCK_AHEAD_OF_STORE_MS = MAX_COMMANDS * MAX_STEP_BACK_MS + 86_400_000;

function liveEntry(model: Readonly<Model>, key: Key): ModelEntry | undefined {
  const entry = model.entries.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) return undefined;
  return entry;
}

function modelValue(model: Model, key: Key): unknown {
  return liveEntry(model, key)?.value;
}

function matches(actual: unknown, expected: unknown): boolean {
  try {
    expect(actual).toEqual(expected);
    return true;
  } catch {
    return false;
  }
}

function modelValueWithItems(model: Model, key: Key): { value: unknown; items: unknown[] } | undefined {
  const entry = liveEntry(model, key);
  return entry && { value: entry.value, items: entry.items };
}

/** Read-your-writes, and honest errors: a read is the model's value or, only while the store is unwell, StorageUnavailableError. */
async function checkReads(model: Model, real: Real): Promise<void> {
  for (const key of KEYS) {
    if (model.poisoned.has(key)) continue;
    const unwell = real.store.unhealthy || real.cache.health !== 'healthy';
    try {
      // One read per key (getWithItems answers the value too): each miss is a store call.
      const atStart = modelValueWithItems(model, key);
      const got = await settleWithTimers(real.cache.getWithItems(key));
      // A read that waits on the store lets the clock run; if an expiry fell within it, the answer
      // of either side of that instant is an honest one.
      const expected = matches(got, atStart) ? atStart : modelValueWithItems(model, key);
      expect(got?.value, `get(${key})`).toEqual(expected?.value);
      expect(got, `getWithItems(${key})`).toEqual(expected);
    } catch (error) {
      if (!(error instanceof StorageUnavailableError)) throw error;
      expect(unwell, `get(${key}) rejected while the store was well: ${error.message}`).toBe(true);
    }
  }
}

type Cmd = fc.AsyncCommand<Model, Real>;

class SetCommand implements Cmd {
  constructor(
    readonly key: Key,
    readonly value: unknown,
    readonly ttlMs: number | undefined,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const now = Date.now();
    await real.cache.set(this.key, this.value, this.ttlMs === undefined ? undefined : { ttlMs: this.ttlMs });
    // A value replaces the value, not the log; a key that was absent starts an empty one.
    const items = liveEntry(model, this.key)?.items ?? [];
    model.entries.set(this.key, {
      value: this.value,
      expiresAt: this.ttlMs ? now + this.ttlMs : null,
      items,
    });
    await checkReads(model, real);
  }
  toString = () =>
    `set(${this.key}, ${JSON.stringify(this.value)}${this.ttlMs ? `, ttl ${this.ttlMs}` : ''})`;
}

/**
 * Appends to a live key (appending to an absent key is allowed, but its items stay invisible),
 * with or without a TTL, whatever TTL the key has.
 */
class AppendCommand implements Cmd {
  constructor(
    readonly key: Key,
    readonly item: unknown,
    readonly ttlMs: number | undefined,
  ) {}
  check = (model: Readonly<Model>) => liveEntry(model, this.key) !== undefined;
  async run(model: Model, real: Real) {
    const entry = liveEntry(model, this.key) as ModelEntry;
    const now = Date.now();
    await real.cache.append(
      this.key,
      this.item,
      this.ttlMs === undefined ? undefined : { ttlMs: this.ttlMs },
    );
    entry.items = [...entry.items, this.item];
    const asked = this.ttlMs ? now + this.ttlMs : null;
    entry.expiresAt = entry.expiresAt === null || asked === null ? null : Math.max(entry.expiresAt, asked);
    await checkReads(model, real);
  }
  toString = () =>
    `append(${this.key}, ${JSON.stringify(this.item)}${this.ttlMs ? `, ttl ${this.ttlMs}` : ''})`;
}

/**
 * While the store is away, an append refreshes a key whose TTL then lapses, and a value is set
 * within the refresh: the append and the value leave in one batch when the store is back, and
 * the value must continue the log there as it does in memory.
 */
class RefreshedThenSetCommand implements Cmd {
  constructor(
    readonly key: Key,
    readonly item: unknown,
    readonly value: unknown,
    readonly extraMs: number,
  ) {}
  check = (model: Readonly<Model>) => liveEntry(model, this.key)?.expiresAt != null;
  async run(model: Model, real: Real) {
    const entry = liveEntry(model, this.key) as ModelEntry & { expiresAt: number };
    const wasDown = real.store.isDown;
    real.store.goDown();
    const now = Date.now();
    const ttlMs = entry.expiresAt - now + this.extraMs;
    await real.cache.append(this.key, this.item, { ttlMs });
    const items = [...entry.items, this.item];
    await vi.advanceTimersByTimeAsync(entry.expiresAt - Date.now());
    await real.cache.set(this.key, this.value);
    model.entries.set(this.key, { value: this.value, expiresAt: null, items });
    if (!wasDown) real.store.comeUp();
    await checkReads(model, real);
  }
  toString = () =>
    `refreshedThenSet(${this.key}, item ${JSON.stringify(this.item)}, +${this.extraMs}ms, ${JSON.stringify(this.value)})`;
}

class DeleteCommand implements Cmd {
  constructor(readonly key: Key) {}
  check = () => true;
  async run(model: Model, real: Real) {
    await real.cache.delete(this.key);
    model.entries.delete(this.key);
    await checkReads(model, real);
  }
  toString = () => `delete(${this.key})`;
}

class AdvanceClockCommand implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    await vi.advanceTimersByTimeAsync(this.ms);
    await checkReads(model, real);
  }
  toString = () => `advance(${this.ms}ms)`;
}

/** The wall clock steps back (an NTP correction), as it may across a restart. */
class ClockStepBackCommand implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    vi.setSystemTime(Date.now() - this.ms);
    await checkReads(model, real);
  }
  toString = () => `clockBack(${this.ms}ms)`;
}

class LatencyCommand implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    real.store.setLatency(this.ms);
    await checkReads(model, real);
  }
  toString = () => `latency(${this.ms}ms)`;
}

class FlushCommand implements Cmd {
  check = () => true;
  async run(model: Model, real: Real) {
    try {
      await settleWithTimers(real.cache.flush({ timeoutMs: 3_000 }));
    } catch (error) {
      if (!(error instanceof FlushTimeoutError)) throw error;
    }
    await checkReads(model, real);
  }
  toString = () => 'flush';
}

class StoreDownCommand implements Cmd {
  check = () => true;
  async run(model: Model, real: Real) {
    real.store.goDown();
    await checkReads(model, real);
  }
  toString = () => 'storeDown';
}

class StoreUpCommand implements Cmd {
  check = () => true;
  async run(model: Model, real: Real) {
    real.store.comeUp();
    await checkReads(model, real);
  }
  toString = () => 'storeUp';
}

class FailNextCommand implements Cmd {
  constructor(readonly count: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    real.store.failNext(this.count);
    await checkReads(model, real);
  }
  toString = () => `failNext(${this.count})`;
}

class CommitThenFailCommand implements Cmd {
  check = () => true;
  async run(model: Model, real: Real) {
    real.store.commitThenFailNext(1);
    await checkReads(model, real);
  }
  toString = () => 'commitThenFail';
}

class PoisonCommand implements Cmd {
  constructor(readonly key: Key) {}
  check = (model: Readonly<Model>) => model.poisoned.size < 2;
  async run(model: Model, real: Real) {
    real.store.rejectKey(this.key);
    model.poisoned.add(this.key);
    await checkReads(model, real);
  }
  toString = () => `poison(${this.key})`;
}

class CrashRestartCommand implements Cmd {
  check = () => true;
  async run(model: Model, real: Real) {
    await real.restart();
    await checkReads(model, real);
  }
  toString = () => 'crashRestart';
}

/**
 * Another host takes over: everything acknowledged reaches the store first (the old host drained
 * before it went away), then a process starts with an empty outbox and its wall clock behind the
 * versions the store holds, and writes a key blind (no read first, so no load shows it a version),
 * maybe appending to it as well. After a flush its writes must still be what the store and every
 * read hold, its items after every older one.
 */
class FreshDiskClockBehindCommand implements Cmd {
  constructor(
    readonly behindMs: number,
    readonly key: Key,
    readonly value: unknown,
    readonly item: unknown,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    real.store.heal();
    await settleWithTimers(real.cache.flush({ timeoutMs: 60_000 }));
    vi.setSystemTime(Date.now() - this.behindMs);
    await real.restartOnFreshDisk();
    if (this.value === undefined) {
      await real.cache.delete(this.key);
      model.entries.delete(this.key);
    } else {
      await real.cache.set(this.key, this.value);
      const items = [...(liveEntry(model, this.key)?.items ?? [])];
      if (this.item !== undefined) {
        await real.cache.append(this.key, this.item);
        items.push(this.item);
      }
      model.entries.set(this.key, { value: this.value, expiresAt: null, items });
    }
    await settleWithTimers(real.cache.flush({ timeoutMs: 60_000 }));
    await checkReads(model, real);
  }
  toString = () =>
    `restartOnFreshDisk(clock -${this.behindMs}ms) then ${this.value === undefined ? `delete(${this.key})` : `set(${this.key}, ${JSON.stringify(this.value)})`}${this.value !== undefined && this.item !== undefined ? `, append(${this.key}, ${JSON.stringify(this.item)})` : ''}`;
}

const keyArb = fc.constantFrom(...KEYS);
const valueArb = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.record({ n: fc.integer(), tags: fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }) }),
);

export function commandArbitraries(options: ModelRunOptions) {
  const ttl = options.expiry
    ? fc.option(fc.integer({ min: 1, max: 5_000 }), { nil: undefined })
    : fc.constant(undefined);
  const set = fc.tuple(keyArb, valueArb, ttl).map(([k, v, t]) => new SetCommand(k, v, t));
  const append = fc.tuple(keyArb, valueArb, ttl).map(([k, v, t]) => new AppendCommand(k, v, t));
  return [
    set,
    set,
    set,
    set,
    append,
    append,
    append,
    keyArb.map((k) => new DeleteCommand(k)),
    keyArb.map((k) => new DeleteCommand(k)),
    fc.constant(new FlushCommand()),
    fc.integer({ min: 1, max: options.expiry ? 6_000 : 500 }).map((ms) => new AdvanceClockCommand(ms)),
    fc.constant(new FlushCommand()),
    fc.constant(new StoreDownCommand()),
    fc.constant(new StoreUpCommand()),
    fc.integer({ min: 1, max: 4 }).map((n) => new FailNextCommand(n)),
    fc.constant(new CommitThenFailCommand()),
    keyArb.map((k) => new PoisonCommand(k)),
    fc.constant(new CrashRestartCommand()),
    fc.constant(new CrashRestartCommand()),
    fc
      .tuple(
        fc.constantFrom(MAX_STEP_BACK_MS, 60_000, 1_000),
        keyArb,
        fc.option(valueArb, { nil: undefined }),
        fc.option(valueArb, { nil: undefined }),
      )
      .map(([ms, key, value, item]) => new FreshDiskClockBehindCommand(ms, key, value, item)),
    fc.integer({ min: 1, max: 5_000 }).map((ms) => new ClockStepBackCommand(ms)),
    ...(options.expiry
      ? [
          fc
            .tuple(keyArb, valueArb, valueArb, fc.integer({ min: 2, max: 5_000 }))
            .map(([k, item, value, ms]) => new RefreshedThenSetCommand(k, item, value, ms)),
        ]
      : []),
    fc.constantFrom(0, 0, 8, 30).map((ms) => new LatencyCommand(ms)),
    fc.integer({ min: 1, max: 12 }).map((ms) => new AdvanceClockCommand(ms)),
  ];
}

export interface StoreFactory {
  /** A fresh, empty store for one run. */
  create(): Promise<Storage>;
}

async function openCache(store: FaultyStorage, outboxPath: string, maxEntries: number) {
  return createHybridCache({
    storage: store,
    outbox: { path: outboxPath, durability: 'process' },
    maxEntries,
    flush: { batchSize: 3, intervalMs: 5, concurrency: 2 },
    retry: { baseMs: 20, maxMs: 400 },
    breaker: { failureThreshold: 3, halfOpenAfterMs: 500 },
    readTimeoutMs: 60_000,
    writeTimeoutMs: 60_000,
    logger: silentLogger,
  });
}

/** Heals the store, drains, and checks the store equals the model and every dead letter is explained. */
async function checkFinalState(model: Model, real: Real): Promise<void> {
  real.store.heal();
  await settleWithTimers(real.cache.flush());
  expect(real.cache.stats().pending).toBe(0);
  const stored = await real.store.inner.getMany([...KEYS]);
  for (const key of KEYS) {
    if (model.poisoned.has(key)) continue;
    const found = stored.get(key);
    // Expiry is the cache's clock's to judge; a store that reads its own may still return the entry.
    const entry = found?.expiresAt != null && found.expiresAt <= Date.now() ? undefined : found;
    const value = entry?.json == null ? undefined : JSON.parse(entry.json);
    expect(value, `store holds ${key}`).toEqual(modelValue(model, key));
    const items = value === undefined ? undefined : (entry?.items ?? []).map((item) => JSON.parse(item.json));
    expect(items, `store holds the items of ${key}`).toEqual(liveEntry(model, key)?.items);
  }
  for (const letter of real.cache.deadLetters()) {
    expect(model.poisoned.has(letter.key as Key), `dead letter for ${letter.key}`).toBe(true);
  }
}

export async function runModel(factory: StoreFactory, options: ModelRunOptions & { numRuns: number }) {
  const runs = Number(process.env.PROPERTY_RUNS ?? 0) || options.numRuns;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(1, 2, 1_000),
      fc.commands(commandArbitraries(options), { maxCommands: MAX_COMMANDS, size: 'large' }),
      async (maxEntries, commands) => {
        vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
        if (options.storeReadsOwnClock) vi.setSystemTime(Date.now() + CLOCK_AHEAD_OF_STORE_MS);
        const dir = mkdtempSync(join(tmpdir(), 'hc-model-'));
        const store = new FaultyStorage(await factory.create());
        const outboxPath = join(dir, 'outbox.db');
        let disks = 0;
        const real: Real = {
          cache: await openCache(store, outboxPath, maxEntries),
          store,
          maxEntries,
          outboxPath,
          async restart() {
            await this.cache[ABANDON]();
            this.cache = await openCache(store, this.outboxPath, maxEntries);
          },
          async restartOnFreshDisk() {
            await this.cache[ABANDON]();
            this.outboxPath = join(dir, `outbox-${++disks}.db`);
            this.cache = await openCache(store, this.outboxPath, maxEntries);
          },
        };
        const model: Model = { entries: new Map(), poisoned: new Set() };
        try {
          await fc.asyncModelRun(() => ({ model, real }), commands);
          await checkFinalState(model, real);
        } finally {
          await real.cache[ABANDON]();
          await store.close();
          vi.useRealTimers();
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ),
    {
      numRuns: runs,
      verbose: 1,
      // To replay a reported failure: PROPERTY_SEED=<seed> PROPERTY_PATH=<path>.
      seed: process.env.PROPERTY_SEED === undefined ? undefined : Number(process.env.PROPERTY_SEED),
      path: process.env.PROPERTY_PATH,
    },
  );
}
