import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HybridCache } from '../../../../src/cache/hybrid-cache.js';
import { resolveOptions } from '../../../../src/cache/options.js';
import {
  type ApplyResult,
  ClosedError,
  type DeadLetter,
  type HybridCacheOptions,
  type Storage,
  StorageConfigurationError,
  type VersionedWrite,
} from '../../../../src/index.js';
import { ClockAnchor } from '../../../../src/sync/clock/clock-anchor.js';
import { HybridLogicalClock } from '../../../../src/sync/clock/hlc.js';
import { Flusher } from '../../../../src/sync/flush/flusher.js';
import type { PendingWrites } from '../../../../src/sync/flush/pending-writes.js';
import { StoreGuard } from '../../../../src/sync/flush/store-guard.js';
import { MemoryOutbox } from '../../../../src/sync/outbox/outbox.js';
import type { FlushEventSink } from '../../../../src/sync/types.js';
import {
  capturingLogger,
  faultyMemory,
  type LogLine,
  memoryCache,
  settleWithTimers,
  silentLogger,
  storedValue,
} from '../../../helpers/cache.js';
import { misanswerApply } from '../../../helpers/misanswer.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** The message of the error a log line carries. */
const errMessage = (line: LogLine | undefined) => (line?.err as { message?: string } | undefined)?.message;

/** Records the size of every batch sent, and the most calls in flight at once. */
function recordBatches(storage: Storage) {
  const sizes: number[] = [];
  const signals: Array<AbortSignal | undefined> = [];
  let active = 0;
  const seen = { peak: 0 };
  const apply = storage.apply.bind(storage);
  storage.apply = async (writes, opts) => {
    sizes.push(writes.length);
    signals.push(opts?.signal);
    seen.peak = Math.max(seen.peak, ++active);
    try {
      return await apply(writes, opts);
    } finally {
      active--;
    }
  };
  return { sizes, signals, seen };
}

/** An outbox whose acknowledge / deadLetter can be made to throw, as a full or failing disk would. */
class FailingOutbox extends MemoryOutbox {
  failAcknowledge = false;
  failDeadLetter = false;

  override acknowledge(): void {
    if (this.failAcknowledge) throw new Error('disk I/O error (injected)');
  }

  override deadLetter(letter: DeadLetter): void {
    if (this.failDeadLetter) throw new Error('database or disk is full (injected)');
    super.deadLetter(letter);
  }
}

function cacheOver(outbox: FailingOutbox, overrides: Partial<HybridCacheOptions> = {}) {
  const storage = faultyMemory();
  const log = capturingLogger();
  const cache = new HybridCache<unknown>(
    resolveOptions({
      storage,
      outbox: { durability: 'none' },
      flush: { batchSize: 50, intervalMs: 10, concurrency: 2 },
      retry: { baseMs: 50, maxMs: 1_000 },
      breaker: { failureThreshold: 3, halfOpenAfterMs: 2_000 },
      logger: log.logger,
      ...overrides,
    }),
    outbox,
  );
  return { cache, storage, log };
}

describe('batching and concurrency', () => {
  it('never sends more than batchSize writes in one call, even with a backlog, nor more than concurrency calls', async () => {
    const { cache, storage } = await memoryCache({ flush: { batchSize: 3, intervalMs: 10, concurrency: 2 } });
    const { sizes, seen } = recordBatches(storage);
    storage.setLatency(100);
    for (let i = 0; i < 6; i++) await cache.set(`k${i}`, i); // two full batches, both in flight
    for (let i = 6; i < 15; i++) await cache.set(`k${i}`, i); // a backlog of 9 behind them
    await settleWithTimers(cache.flush());
    expect(sizes).toEqual([3, 3, 3, 3, 3]);
    expect(seen.peak).toBe(2);
    for (let i = 0; i < 15; i++) expect(storedValue(storage, `k${i}`)).toBe(i);
  });

  it('while all slots are busy, keeps collecting ready keys into one fuller batch', async () => {
    const { cache, storage } = await memoryCache({
      flush: { batchSize: 10, intervalMs: 10, concurrency: 1 },
    });
    const { sizes } = recordBatches(storage);
    storage.setLatency(100);
    for (let i = 0; i < 5; i++) await cache.set(`a${i}`, i);
    await vi.advanceTimersByTimeAsync(10); // first batch in flight until t=110
    for (let i = 0; i < 3; i++) await cache.set(`b${i}`, i);
    await vi.advanceTimersByTimeAsync(30); // the interval passes while the only slot is busy
    for (let i = 0; i < 2; i++) await cache.set(`c${i}`, i);
    await settleWithTimers(cache.flush());
    expect(sizes).toEqual([5, 5]);
  });

  it('sends a batch intervalMs after its first write, without a stale timer sending the next one early', async () => {
    const { cache, storage } = await memoryCache({
      flush: { batchSize: 50, intervalMs: 100, concurrency: 1 },
    });
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(60);
    await cache.set('b', 2); // joins the batch already waiting; does not start another interval
    await vi.advanceTimersByTimeAsync(40);
    expect(storage.calls.apply).toBe(1);
    await vi.advanceTimersByTimeAsync(30);
    await cache.set('c', 3); // t=130: its batch goes at t=230
    await vi.advanceTimersByTimeAsync(99);
    expect(storage.calls.apply).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(storage.calls.apply).toBe(2);
    expect(storedValue(storage, 'c')).toBe(3);
  });

  it('does not count a rewrite of a key whose write is in flight as coalesced (both versions are sent)', async () => {
    const { cache, storage } = await memoryCache();
    storage.setLatency(100);
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(20); // a=1 in flight
    await cache.set('a', 2);
    expect(cache.stats().coalescedWrites).toBe(0);
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'a')).toBe(2);
    expect(cache.stats()).toMatchObject({ coalescedWrites: 0, flushedWrites: 2 });
  });
});

describe('flush waits for the right version', () => {
  it('does not resolve when an older version of a key lands, only when the one it waited for does', async () => {
    const { cache, storage } = await memoryCache();
    storage.setLatency(100);
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(20); // a=1 in flight until t=110
    await cache.set('a', 2);
    let flushed = false;
    const flushing = cache.flush().then(() => {
      flushed = true;
    });
    await vi.advanceTimersByTimeAsync(95);
    expect(storedValue(storage, 'a')).toBe(1);
    expect(flushed).toBe(false);
    await settleWithTimers(flushing);
    expect(storedValue(storage, 'a')).toBe(2);
  });
});

describe('results the store sends back', () => {
  it('emits flushed with the count and keys of acknowledged writes', async () => {
    const { cache } = await memoryCache();
    const events: Array<{ count: number; keys: string[] }> = [];
    cache.on('flushed', (e) => events.push(e));
    await cache.set('a', 1);
    await cache.delete('b');
    await cache.flush();
    expect(events).toEqual([{ count: 2, keys: ['a', 'b'] }]);
  });

  it('emits no flushed event for a batch where nothing was acknowledged', async () => {
    const { cache, storage } = await memoryCache();
    const events: unknown[] = [];
    cache.on('flushed', (e) => events.push(e));
    storage.rejectKey('p', 'violates a check constraint');
    await cache.set('p', 1);
    await cache.flush();
    expect(cache.deadLetters()).toHaveLength(1);
    expect(events).toEqual([]);
  });

  it('keeps its copy (no store read) when a retried write comes back stale at its own version', async () => {
    const { cache, storage } = await memoryCache();
    storage.commitThenFailNext(1); // committed, answer lost; the retry is stale at the same version
    await cache.set('a', 'v1');
    await settleWithTimers(cache.flush());
    expect(cache.stats().pending).toBe(0);
    expect(await cache.get('a')).toBe('v1');
    expect(storage.calls.getMany).toBe(0);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 0 });
  });

  it('reads the store again, reporting nothing, when the adapter reports stale without saying what it holds', async () => {
    const { cache, storage } = await memoryCache();
    const apply = storage.apply.bind(storage);
    storage.apply = async (writes, opts) => {
      await apply(writes, opts);
      return writes.map((): ApplyResult => ({ status: 'stale' }));
    };
    await cache.set('a', 'v1');
    await cache.flush();
    // It may have lost a tie at its own version: memory's copy is not kept, the store's is read.
    expect(await cache.get('a')).toBe('v1');
    expect(storage.calls.getMany).toBe(1);
    expect(cache.stats().superseded).toBe(0);
  });

  it('dead-letters an item the adapter rejected without an error, with a readable error string', async () => {
    const { cache, storage } = await memoryCache();
    const apply = storage.apply.bind(storage);
    let calls = 0;
    // Only the first answers are broken, so a regression ends in a failed assertion, not a hang.
    storage.apply = async (writes, opts) =>
      calls++ < 3
        ? writes.map((): ApplyResult => ({ status: 'rejected', error: undefined as unknown as Error }))
        : apply(writes, opts);
    await cache.set('p', 1);
    await cache.flush();
    expect(cache.deadLetters()).toMatchObject([{ key: 'p', error: expect.any(String) }]);
    expect(cache.stats()).toMatchObject({ pending: 0, deadLetters: 1 });
  });

  it('logs a dead letter with its key, version and error', async () => {
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    storage.rejectKey('p', 'violates a check constraint');
    await cache.set('p', 1);
    await cache.flush();
    const [letter] = cache.deadLetters();
    expect(log.at('warn')).toContainEqual(
      expect.objectContaining({ key: 'p', version: letter?.version, error: 'violates a check constraint' }),
    );
  });
});

describe('failures the flusher reports', () => {
  it('logs a misconfigured store at error level with its message, and keeps the writes queued', async () => {
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    storage.apply = async () => {
      throw new StorageConfigurationError('run migration 002 on the store');
    };
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(100);
    expect(cache.stats()).toMatchObject({ pending: 1, deadLetters: 0 });
    const errors = log.at('error');
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]?.err).toMatchObject({ message: 'run migration 002 on the store' });
  });

  it('does not log an ordinary transient failure at error level', async () => {
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    storage.goDown();
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(cache.stats().retries).toBeGreaterThan(0);
    expect(log.at('error')).toEqual([]);
  });

  it('retries, and logs, a batch the adapter answered with the wrong number of results', async () => {
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    misanswerApply(storage, 1, () => []);
    const retries: Error[] = [];
    cache.on('retry', ({ error }) => retries.push(error));
    await cache.set('a', 1);
    await cache.set('b', 2);
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'b')).toBe(2);
    expect(retries).toHaveLength(1);
    const [error] = log.at('error');
    const message = errMessage(error);
    expect(message).toBe(retries[0]?.message);
    expect(message).toMatch(/\b0\b/); // results returned
    expect(message).toMatch(/\b2\b/); // writes sent
  });

  it('retries a batch the adapter answered with no result array at all', async () => {
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    misanswerApply(storage, 1, () => undefined);
    await cache.set('a', 1);
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'a')).toBe(1);
    expect(cache.stats().retries).toBe(1);
    expect(log.at('error')).toHaveLength(1);
  });

  // Regression: a malformed item used to throw inside the flusher, which re-sent the batch at once,
  // with no backoff, in a loop of microtasks (and an unhandled rejection per attempt); an unknown
  // status was taken as "stale", marking a write flushed that the store may not hold.
  it.each([
    ['a null item', null],
    ['an unknown status', { status: 'queued' }],
  ])(
    'backs off and retries a batch whose answer holds %s, never counting it as flushed',
    async (_label, item) => {
      const log = capturingLogger();
      const { cache, storage } = await memoryCache({ logger: log.logger });
      misanswerApply(storage, 3, (writes) => writes.map(() => item));
      await cache.set('user:42', 1);
      await vi.advanceTimersByTimeAsync(10);
      expect(cache.stats()).toMatchObject({ pending: 1, flushedWrites: 0, retries: 1 });
      const [error] = log.at('error');
      expect(errMessage(error)).toContain('user:42');
      await settleWithTimers(cache.flush());
      expect(storedValue(storage, 'user:42')).toBe(1);
      expect(cache.stats()).toMatchObject({ pending: 0, flushedWrites: 1, retries: 3 });
    },
  );
});

// Regression: a listener that threw used to escape into the flusher. A throwing 'retry' listener
// skipped arming the retry timer, so the batch was re-sent at once, in a loop of microtasks that
// starved the event loop; a throwing 'deadLetter' listener left flush() waiting forever.
describe('event listeners that throw', () => {
  const listenerBug = () => {
    throw new Error('listener bug');
  };

  it('a throwing retry listener does not make the flusher retry without backoff', async () => {
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    let throws = 5; // finitely many, so a regression fails this test instead of hanging it
    cache.on('retry', () => {
      if (throws-- > 0) listenerBug();
    });
    storage.goDown();
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(storage.calls.apply).toBe(1);
    expect(cache.stats()).toMatchObject({ retries: 1, pending: 1 });
    expect(log.at('error')).toContainEqual(
      expect.objectContaining({ event: 'retry', err: expect.objectContaining({ message: 'listener bug' }) }),
    );
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'a')).toBe(1);
  });

  it('a throwing deadLetter listener does not leave flush() waiting', async () => {
    const { cache, storage } = await memoryCache({ logger: capturingLogger().logger });
    cache.on('deadLetter', listenerBug);
    storage.rejectKey('p');
    await cache.set('p', 1);
    await settleWithTimers(cache.flush({ timeoutMs: 1_000 }));
    expect(cache.deadLetters()).toMatchObject([{ key: 'p' }]);
  });

  it('a throwing health listener neither fails store calls nor stops health from moving', async () => {
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    const seen: string[] = [];
    cache.on('health', ({ to }) => {
      seen.push(to);
      listenerBug();
    });
    storage.goDown();
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(cache.health).toBe('degraded');
    storage.comeUp();
    await settleWithTimers(cache.flush());
    expect(storedValue(storage, 'a')).toBe(1);
    expect(cache.health).toBe('healthy');
    expect(seen).toEqual(['degraded', 'healthy']);
    expect(log.at('error').filter((l) => l.event === 'health')).toHaveLength(2);
  });

  it('a throwing flushed listener does not disturb the flush', async () => {
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    cache.on('flushed', listenerBug);
    await cache.set('a', 1);
    await cache.flush();
    expect(storedValue(storage, 'a')).toBe(1);
    expect(cache.stats().pending).toBe(0);
    expect(log.at('error')).toContainEqual(expect.objectContaining({ event: 'flushed' }));
  });
});

describe('outbox failures after the store answered', () => {
  it('still settles the writes and emits flushed when the outbox cannot clear them, and logs why', async () => {
    const outbox = new FailingOutbox();
    outbox.failAcknowledge = true;
    const { cache, storage, log } = cacheOver(outbox);
    const events: Array<{ count: number; keys: string[] }> = [];
    cache.on('flushed', (e) => events.push(e));
    await cache.set('a', 1);
    await cache.flush();
    expect(storedValue(storage, 'a')).toBe(1);
    expect(cache.stats()).toMatchObject({ pending: 0, flushedWrites: 1 });
    expect(events).toEqual([{ count: 1, keys: ['a'] }]);
    expect(log.at('error')).toContainEqual(
      expect.objectContaining({ err: expect.objectContaining({ message: 'disk I/O error (injected)' }) }),
    );
  });

  it('keeps a poison write queued when its dead letter cannot be recorded, and records it once the outbox recovers', async () => {
    const outbox = new FailingOutbox();
    outbox.failDeadLetter = true;
    const { cache, storage, log } = cacheOver(outbox);
    const letters: string[] = [];
    cache.on('deadLetter', (l) => letters.push(l.key));
    storage.rejectKey('p', 'violates a check constraint');
    await cache.set('p', 1);
    await vi.advanceTimersByTimeAsync(20);
    expect(cache.stats()).toMatchObject({ pending: 1, deadLetters: 0 });
    expect(cache.deadLetters()).toEqual([]);
    expect(letters).toEqual([]);
    expect(cache.stats().retries).toBeGreaterThan(0);
    expect(log.at('error')).toContainEqual(
      expect.objectContaining({
        key: 'p',
        err: expect.objectContaining({ message: 'database or disk is full (injected)' }),
      }),
    );
    outbox.failDeadLetter = false;
    await settleWithTimers(cache.flush());
    expect(letters).toEqual(['p']);
    expect(cache.deadLetters()).toMatchObject([{ key: 'p', error: 'violates a check constraint' }]);
    expect(cache.stats()).toMatchObject({ pending: 0, deadLetters: 1 });
  });
});

describe('close', () => {
  it('aborts the in-flight call through its signal, rejects waiting flushes, and neither retries nor calls the store afterwards', async () => {
    const { cache, storage } = await memoryCache();
    const { signals } = recordBatches(storage);
    const retries: unknown[] = [];
    storage.setLatency(10_000);
    await cache.set('a', 1);
    await vi.advanceTimersByTimeAsync(20);
    expect(storage.calls.apply).toBe(1);
    const waiting = cache.flush();
    const rejected = expect(waiting).rejects.toThrow(ClosedError);
    const closing = cache.close({ timeoutMs: 100 });
    cache.on('retry', (e) => retries.push(e));
    await vi.advanceTimersByTimeAsync(100);
    expect(await closing).toEqual({ pending: 1, drained: false });
    await rejected;
    await expect(waiting).rejects.toThrow(/closed/);
    expect(signals[0]?.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(storage.calls.apply).toBe(1);
    expect(retries).toEqual([]);
    expect(cache.stats().retries).toBe(0);
  });
});

describe('Flusher.waitFor', () => {
  /** The flusher's narrow view of pending writes, over a plain map: no memory tier needed. */
  function pendingOver(latest: Map<string, VersionedWrite>): PendingWrites {
    const forget = ({ key, version }: VersionedWrite) => {
      if (latest.get(key)?.version !== version) return false;
      latest.delete(key);
      return true;
    };
    return {
      writesFor: (key) => {
        const write = latest.get(key);
        return write ? [write] : [];
      },
      isPending: (key) => latest.has(key),
      applied: forget,
      alreadyStored: forget,
      unconfirmed: forget,
      superseded: forget,
      deadLettered: forget,
    };
  }

  function flusherOver(
    storage = faultyMemory(),
    events: FlushEventSink = { wants: () => false, emit: () => {} },
  ) {
    const latest = new Map<string, VersionedWrite>();
    const guard = new StoreGuard({
      failureThreshold: 3,
      halfOpenAfterMs: 1_000,
      readTimeoutMs: 500,
      writeTimeoutMs: 500,
      onHealthChange: () => {},
    });
    const clock = new HybridLogicalClock();
    const flusher = new Flusher({
      storage,
      guard,
      outbox: new MemoryOutbox(),
      pending: pendingOver(latest),
      clock,
      anchor: anchorOver(clock, storage),
      events,
      logger: silentLogger,
      batchSize: 10,
      intervalMs: 10,
      concurrency: 1,
      retry: { baseMs: 50, maxMs: 1_000 },
    });
    const write = (key: string, value: unknown): VersionedWrite => {
      const written = { key, version: clock.next(), json: JSON.stringify(value), expiresAt: null };
      latest.set(key, written);
      flusher.schedule(key);
      return written;
    };
    return { flusher, write, storage };
  }

  const track = (promise: Promise<void>) => {
    const state = { settled: false as false | 'resolved' | 'rejected' };
    promise.then(
      () => (state.settled = 'resolved'),
      () => (state.settled = 'rejected'),
    );
    return state;
  };

  it('rejects with ClosedError once stopped, whatever it is asked to wait for', async () => {
    const { flusher, write } = flusherOver();
    const w = write('a', 1);
    await flusher.stop();
    await expect(flusher.waitFor(new Map([[w.key, w.version]])).done).rejects.toBeInstanceOf(ClosedError);
    await expect(flusher.waitFor(new Map()).done).rejects.toBeInstanceOf(ClosedError);
  });

  it('cancel() detaches the waiter: it neither resolves when the write lands nor rejects at stop', async () => {
    const { flusher, write, storage } = flusherOver();
    const w = write('a', 1);
    const { done, cancel } = flusher.waitFor(new Map([[w.key, w.version]]));
    const state = track(done);
    cancel();
    await vi.advanceTimersByTimeAsync(100);
    expect(storage.inner.peek('a')?.version).toBe(w.version);
    await flusher.stop();
    await vi.advanceTimersByTimeAsync(0);
    expect(state.settled).toBe(false);
  });

  it('without cancel, resolves when the write lands', async () => {
    const { flusher, write } = flusherOver();
    const w = write('a', 1);
    const state = track(flusher.waitFor(new Map([[w.key, w.version]])).done);
    await vi.advanceTimersByTimeAsync(100);
    expect(state.settled).toBe('resolved');
  });

  it('builds no flushed payload when nobody listens, and reports it to the sink when someone does', async () => {
    const emitted: string[] = [];
    let listening = false;
    const events: FlushEventSink = {
      wants: (event) => listening && event === 'flushed',
      emit: (event, payload) => emitted.push(`${event}:${JSON.stringify(payload)}`),
    };
    const { flusher, write } = flusherOver(faultyMemory(), events);
    const a = write('a', 1);
    await flusher.waitFor(new Map([[a.key, a.version]])).done;
    expect(emitted).toEqual([]);
    listening = true;
    const b = write('b', 2);
    await flusher.waitFor(new Map([[b.key, b.version]])).done;
    expect(emitted).toEqual(['flushed:{"count":1,"keys":["b"]}']);
  });
});

/** An anchor over the store's mark with nothing to re-version: it only moves the clock past the mark. */
function anchorOver(
  clock: HybridLogicalClock,
  storage: { highWaterMark(opts?: { signal?: AbortSignal }): Promise<number> },
) {
  const anchor: ClockAnchor = new ClockAnchor(
    (signal) => storage.highWaterMark(signal ? { signal } : {}),
    async (mark) => {
      clock.observe(mark);
      anchor.anchoredNow();
    },
  );
  return anchor;
}
