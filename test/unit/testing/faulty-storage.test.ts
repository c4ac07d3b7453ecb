import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  MemoryStorage,
  PermanentStorageError,
  SqliteStorage,
  type Storage,
  StorageConfigurationError,
  TransientStorageError,
} from '../../../src/index.js';
import { FaultyStorage } from '../../../src/testing/index.js';
import { put } from '../../helpers/writes.js';

const failureOf = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

// The wrapper works on any Storage: every fault is exercised over both embedded adapters.
describe.each([
  ['MemoryStorage', () => new MemoryStorage()],
  ['SqliteStorage', () => new SqliteStorage({ path: ':memory:' })],
] as const)('FaultyStorage over %s', (_name, create: () => Storage) => {
  let storage: FaultyStorage;
  const stored = async (key: string) => (await storage.inner.getMany([key])).get(key);

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    storage = new FaultyStorage(create());
  });
  afterEach(async () => {
    vi.useRealTimers();
    await storage.close();
  });

  it('passes calls through unchanged while healthy, and counts them', async () => {
    expect(await storage.apply([put('k', 1, 'v'), put('k2', 1, 'w')])).toEqual([
      { status: 'applied' },
      { status: 'applied' },
    ]);
    expect(await storage.apply([put('k', 1, 'v')])).toEqual([
      { status: 'stale', storedVersion: 1, storedDiffers: false },
    ]);
    expect((await storage.getMany(['k'])).get('k')?.version).toBe(1);
    expect(await storage.highWaterMark()).toBe(1);
    expect(storage.calls).toMatchObject({ apply: 2, writesApplied: 2, getMany: 1, highWaterMark: 1 });
  });

  it('fails every call transiently while down, and reports it', async () => {
    expect(storage.isDown).toBe(false);
    storage.goDown();
    expect(storage.isDown).toBe(true);
    expect(storage.unhealthy).toBe(true);
    await expect(storage.getMany(['k'])).rejects.toThrow(TransientStorageError);
    await expect(storage.apply([put('k', 1, 'v')])).rejects.toThrow(TransientStorageError);
    await expect(storage.highWaterMark()).rejects.toThrow(TransientStorageError);
    storage.comeUp();
    expect(storage.unhealthy).toBe(false);
    expect(await storage.apply([put('k', 1, 'v')])).toEqual([{ status: 'applied' }]);
  });

  it.each([
    ['transient', TransientStorageError],
    ['permanent', PermanentStorageError],
    ['configuration', StorageConfigurationError],
  ] as const)('fails the next calls with a %s error before touching data', async (kind, type) => {
    storage.failNext(2, kind);
    await expect(storage.apply([put('k', 1, 'v')])).rejects.toThrow(type);
    await expect(storage.apply([put('k', 1, 'v')])).rejects.toThrow(type);
    expect(await stored('k')).toBeUndefined();
    expect(await storage.apply([put('k', 1, 'v')])).toEqual([{ status: 'applied' }]);
  });

  it('rejects writes to a poison key, lands the rest of the batch, and accepts the key again when told', async () => {
    storage.rejectKey('bad', 'no such thread');
    expect(storage.isRejected('bad')).toBe(true);
    const results = await storage.apply([put('good', 1, 'v'), put('bad', 1, 'v'), put('also', 1, 'v')]);
    expect(results.map((r) => r.status)).toEqual(['applied', 'rejected', 'applied']);
    const rejected = results[1];
    expect(rejected?.status === 'rejected' && rejected.error).toBeInstanceOf(PermanentStorageError);
    expect(rejected?.status === 'rejected' && rejected.error.message).toBe('no such thread');
    expect(await stored('bad')).toBeUndefined();
    storage.acceptKey('bad');
    expect(await storage.apply([put('bad', 1, 'v')])).toEqual([{ status: 'applied' }]);
  });

  it('commits the writes and then fails the call transiently, once', async () => {
    storage.commitThenFailNext();
    await expect(storage.apply([put('k', 1, 'v')])).rejects.toThrow(TransientStorageError);
    expect((await stored('k'))?.version).toBe(1);
    expect(await storage.apply([put('k', 2, 'v2')])).toEqual([{ status: 'applied' }]);
  });

  it('delays calls by the configured latency, with or without a signal', async () => {
    storage.setLatency(100);
    let done = false;
    const call = storage.apply([put('k', 1, 'v')]).then((r) => {
      done = true;
      return r;
    });
    await vi.advanceTimersByTimeAsync(99);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await call).toEqual([{ status: 'applied' }]);
    const read = storage.getMany(['k'], { signal: new AbortController().signal });
    await vi.advanceTimersByTimeAsync(100);
    expect((await read).size).toBe(1);
  });

  it('aborts a delayed call with the signal’s reason, before touching data', async () => {
    storage.setLatency(1_000);
    const controller = new AbortController();
    const call = failureOf(storage.apply([put('k', 1, 'v')], { signal: controller.signal }));
    await vi.advanceTimersByTimeAsync(10);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    expect(await call).toBe(reason);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await stored('k')).toBeUndefined();
  });

  it('heals every fault but poison keys', async () => {
    storage.goDown();
    storage.failNext(3);
    storage.setLatency(1_000);
    storage.commitThenFailNext();
    storage.rejectKey('bad');
    storage.heal();
    expect(storage.unhealthy).toBe(false);
    const results = await storage.apply([put('k', 1, 'v'), put('bad', 1, 'v')]);
    expect(results.map((r) => r.status)).toEqual(['applied', 'rejected']);
  });

  it('offers cleanup exactly when the wrapped store does, with faults applied', async () => {
    expect(typeof storage.cleanup).toBe('function');
    storage.goDown();
    await expect(storage.cleanup?.()).rejects.toThrow(TransientStorageError);
    storage.comeUp();
    expect(await storage.cleanup?.()).toBe(0);
    const bare: Storage = { getMany: vi.fn(), apply: vi.fn(), highWaterMark: vi.fn() };
    expect(new FaultyStorage(bare).cleanup).toBeUndefined();
  });

  it("offers the wrapped store's change feed, down with the store, but leaves failNext to the other calls", async () => {
    const head = await storage.changes?.(null);
    await storage.apply([put('k', 1, 'v')]);
    storage.failNext(1);
    const page = await storage.changes?.(head?.cursor ?? null);
    expect(page?.changes).toEqual([{ key: 'k', version: 1 }]);
    await expect(storage.getMany(['k'])).rejects.toThrow(TransientStorageError);
    storage.goDown();
    await expect(storage.changes?.(null)).rejects.toThrow(TransientStorageError);
    expect(storage.calls.changes).toBe(3);
    const bare: Storage = { getMany: vi.fn(), apply: vi.fn(), highWaterMark: vi.fn() };
    expect(new FaultyStorage(bare).changes).toBeUndefined();
  });
});

describe('FaultyStorage and a doorbell', () => {
  it("passes the wrapped store's doorbell through, and has none when it has none", () => {
    const rings: Array<() => void> = [];
    const unsubscribe = vi.fn();
    const inner: Storage = {
      getMany: vi.fn(),
      apply: vi.fn(),
      highWaterMark: vi.fn(),
      onChange: (listener) => {
        rings.push(listener);
        return unsubscribe;
      },
      doorbellState: () => 'listening',
    };
    const wrapped = new FaultyStorage(inner);
    const heard = vi.fn();
    wrapped.onChange?.(heard)();
    rings[0]?.();
    expect(heard).toHaveBeenCalledOnce();
    expect(unsubscribe).toHaveBeenCalledOnce();
    expect(wrapped.doorbellState?.()).toBe('listening');
    const bare = new FaultyStorage(new MemoryStorage());
    expect(bare.onChange).toBeUndefined();
    expect(bare.doorbellState).toBeUndefined();
  });
});
