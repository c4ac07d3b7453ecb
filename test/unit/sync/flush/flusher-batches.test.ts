import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ApplyResult,
  type DeadLetter,
  isAppend,
  OutboxError,
  PermanentStorageError,
  type Storage,
  StorageConfigurationError,
  TransientStorageError,
  type VersionedWrite,
} from '../../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../../src/storage/contract/version.js';
import { ClockAnchor } from '../../../../src/sync/clock/clock-anchor.js';
import { HybridLogicalClock } from '../../../../src/sync/clock/hlc.js';
import { Flusher } from '../../../../src/sync/flush/flusher.js';
import type { PendingWrites } from '../../../../src/sync/flush/pending-writes.js';
import { StoreGuard } from '../../../../src/sync/flush/store-guard.js';
import { MemoryOutbox } from '../../../../src/sync/outbox/outbox.js';
import type { FlushEventSink, FlushEvents } from '../../../../src/sync/types.js';
import { capturingLogger, type LogLine } from '../../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** What one write looked like when it was sent. */
interface Sent {
  key: string;
  version: number;
  json: string | null;
  logFloor?: number;
}

/**
 * A Flusher over hand-made parts: a store whose answers each test scripts, pending writes kept in a
 * plain map (each key's writes, in the order they are sent), and every call and event recorded.
 */
function harness(
  options: {
    batchSize?: number;
    concurrency?: number;
    anchored?: boolean;
    mark?: (signal?: AbortSignal) => Promise<number>;
  } = {},
) {
  const { batchSize = 10, concurrency = 1, anchored = true } = options;
  const sent: Sent[][] = [];
  let answer = (writes: VersionedWrite[]): Promise<ApplyResult[]> | ApplyResult[] =>
    writes.map((): ApplyResult => ({ status: 'applied' }));
  let markReads = 0;
  const readMark = options.mark ?? (async () => 0);
  const storage: Storage = {
    getMany: async () => new Map(),
    apply: async (writes) => {
      sent.push(
        writes.map((w) => {
          const { key, version, json } = w;
          const logFloor = isAppend(w) ? undefined : w.logFloor;
          return logFloor ? { key, version, json, logFloor } : { key, version, json };
        }),
      );
      return answer(writes);
    },
    highWaterMark: (opts) => {
      markReads++;
      return readMark(opts?.signal);
    },
  };

  const latest = new Map<string, VersionedWrite[]>();
  const calls: string[] = [];
  const forget = (what: string) => (write: VersionedWrite) => {
    calls.push(`${what} ${write.key}@${write.version}`);
    const left = (latest.get(write.key) ?? []).filter((w) => w !== write);
    if (left.length > 0) latest.set(write.key, left);
    else latest.delete(write.key);
    return true;
  };
  const pending: PendingWrites = {
    writesFor: (key) => [...(latest.get(key) ?? [])],
    isPending: (key) => latest.has(key),
    applied: forget('applied'),
    alreadyStored: forget('alreadyStored'),
    unconfirmed: forget('unconfirmed'),
    superseded: forget('superseded'),
    deadLettered: forget('deadLettered'),
  };

  const events: Array<{ event: keyof FlushEvents; payload: unknown }> = [];
  const sink: FlushEventSink = {
    wants: () => true,
    emit: (event, payload) => events.push({ event, payload }),
  };
  const log = capturingLogger();
  const clock = new HybridLogicalClock();
  // Writes accepted before the anchor, and a stand-in for the cache's anchoring step: once the mark
  // is read it gives them new versions above it, in the order of the old ones, in place (the
  // pending writes are the objects memory holds), unless all are above it already.
  const early: VersionedWrite[] = [];
  const reversioned = new Map<number, number>();
  const marks: number[] = [];
  let stepFailure: Error | undefined;
  const anchor: ClockAnchor = new ClockAnchor(
    (signal) => storage.highWaterMark(signal ? { signal } : {}),
    async (mark) => {
      marks.push(mark);
      if (stepFailure) throw stepFailure;
      clock.observe(mark);
      const olds = early.flatMap((w) => (w.items ? w.items.map((i) => i.version) : [w.version]));
      olds.sort((a, b) => a - b);
      if (olds.length > 0 && (olds[0] as number) <= mark) {
        for (const old of olds) reversioned.set(old, clock.next());
        for (const w of early) {
          if (w.items) {
            for (const item of w.items) item.version = reversioned.get(item.version) as number;
            w.version = Math.max(...w.items.map((i) => i.version));
          } else w.version = reversioned.get(w.version) as number;
        }
      }
      anchor.anchoredNow();
    },
  );
  const outbox = new MemoryOutbox();
  const guard = new StoreGuard({
    failureThreshold: 100,
    halfOpenAfterMs: 1_000,
    readTimeoutMs: 500,
    writeTimeoutMs: 500,
    onHealthChange: () => {},
  });
  const flusher = new Flusher({
    storage,
    guard,
    outbox,
    pending,
    clock,
    anchor,
    events: sink,
    logger: log.logger,
    batchSize,
    intervalMs: 10,
    concurrency,
    retry: { baseMs: 50, maxMs: 1_000 },
  });

  /** Accepts a value write for `key` (minted now, as the cache would) without scheduling it. */
  const accept = (key: string, value: unknown, extra: Partial<VersionedWrite> = {}): VersionedWrite => {
    const version = clock.next();
    const write = { key, version, json: JSON.stringify(value), expiresAt: null, ...extra } as VersionedWrite;
    if (!anchored) early.push(write);
    latest.set(key, [...(latest.get(key) ?? []), write]);
    return write;
  };
  /** Accepts `count` appended items for `key` as one pending append, without scheduling it. */
  const acceptItems = (key: string, count: number): VersionedWrite => {
    const items = Array.from({ length: count }, () => {
      const version = clock.next();
      return { id: `item-${version}`, version, json: JSON.stringify(version) };
    });
    const versions = items.map((i) => i.version);
    const write: VersionedWrite = {
      key,
      version: Math.max(...versions),
      json: null,
      expiresAt: null,
      appendedAt: 0,
      items,
    };
    if (!anchored) early.push(write);
    latest.set(key, [...(latest.get(key) ?? []), write]);
    return write;
  };
  const write = (key: string, value: unknown, extra: Partial<VersionedWrite> = {}): VersionedWrite => {
    const written = accept(key, value, extra);
    flusher.schedule(key);
    return written;
  };
  const named = (event: keyof FlushEvents) => events.filter((e) => e.event === event).map((e) => e.payload);
  return {
    flusher,
    clock,
    anchor,
    outbox,
    sent,
    calls,
    events: named,
    log,
    latest,
    accept,
    acceptItems,
    write,
    reversioned,
    marks,
    failSteps: (error: Error | undefined) => {
      stepFailure = error;
    },
    markReads: () => markReads,
    answer: (next: typeof answer) => {
      answer = next;
    },
  };
}

const errOf = (line: LogLine | undefined) => (line?.err as { message?: string } | undefined)?.message;

describe('a value that replaced an unflushed delete (a log floor)', () => {
  it('is sent as one write carrying its log floor, beside the batch, and counts as flushed like any value', async () => {
    const h = harness();
    const plain = h.write('a', 1);
    const ending = h.write('b', 2, { logFloor: 1_000 });
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent).toEqual([
      [
        { key: 'a', version: plain.version, json: '1' },
        { key: 'b', version: ending.version, json: '2', logFloor: 1_000 },
      ],
    ]);
    expect(h.calls).toEqual([`applied a@${plain.version}`, `applied b@${ending.version}`]);
    expect(h.events('flushed')).toEqual([{ count: 2, keys: ['a', 'b'] }]);
  });

  it('refused for good, is dead-lettered alone once the batch is split, like any value', async () => {
    const h = harness();
    const plain = h.write('a', 1);
    const ending = h.write('p', 'poison', { logFloor: 1_000 });
    h.answer((writes) => {
      if (writes.some((w) => w.key === 'p')) throw new PermanentStorageError('violates a check constraint');
      return writes.map((): ApplyResult => ({ status: 'applied' }));
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent.map((batch) => batch.map((w) => w.version))).toEqual([
      [plain.version, ending.version],
      [plain.version],
      [ending.version],
    ]);
    expect(h.outbox.deadLetters()).toMatchObject([
      { key: 'p', version: ending.version, json: '"poison"', error: 'violates a check constraint' },
    ]);
    expect(h.calls).toEqual([`applied a@${plain.version}`, `deadLettered p@${ending.version}`]);
    expect(h.flusher.retries).toBe(0);
  });

  it('stale because the store holds a newer value, is superseded with its floor (nothing else is sent)', async () => {
    const h = harness();
    const ending = h.write('b', 2, { logFloor: 1_000 });
    const newer = ending.version + 5;
    h.answer((writes) => writes.map((): ApplyResult => ({ status: 'stale', storedVersion: newer })));
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent).toEqual([[{ key: 'b', version: ending.version, json: '2', logFloor: 1_000 }]]);
    expect(h.calls).toEqual([`superseded b@${ending.version}`]);
  });
});

describe('what the store answers for each write', () => {
  it('a stale answer without a stored version cannot tell ours from a tie it lost: unconfirmed, not reported', async () => {
    const h = harness();
    const w = h.write('a', 1);
    h.answer((writes) => writes.map((): ApplyResult => ({ status: 'stale' })));
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls).toEqual([`unconfirmed a@${w.version}`]);
    expect(h.events('superseded')).toEqual([]);
    expect(h.events('flushed')).toEqual([{ count: 1, keys: ['a'] }]);
  });

  it('stale at our own version holding a different write: a lost tie, superseded and reported', async () => {
    const h = harness();
    const w = h.write('a', 1);
    h.answer((writes) =>
      writes.map((x): ApplyResult => ({ status: 'stale', storedVersion: x.version, storedDiffers: true })),
    );
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls).toEqual([`superseded a@${w.version}`]);
    expect(h.events('superseded')).toEqual([{ key: 'a', localVersion: w.version, storedVersion: w.version }]);
    expect(h.log.at('warn')[0]?.msg).toMatch(/lost a tie/);
  });

  it('a newer stored version supersedes ours, is reported, and moves the clock past it', async () => {
    const h = harness();
    const w = h.write('a', 1);
    const storedVersion = w.version + 1_000_000_000;
    h.answer((writes) => writes.map((): ApplyResult => ({ status: 'stale', storedVersion })));
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls).toEqual([`superseded a@${w.version}`]);
    expect(h.events('superseded')).toEqual([{ key: 'a', localVersion: w.version, storedVersion }]);
    expect(h.clock.next()).toBeGreaterThan(storedVersion);
    const [warning] = h.log.at('warn');
    expect(warning).toMatchObject({ key: 'a', localVersion: w.version, storedVersion });
    expect(warning?.msg).toMatch(/newer write from another instance/);
  });

  it('logs a dead-lettered write at warn level, saying so', async () => {
    const h = harness();
    const w = h.write('p', 1);
    h.answer((writes) =>
      writes.map((): ApplyResult => ({ status: 'rejected', error: new Error('bad row') })),
    );
    await vi.advanceTimersByTimeAsync(10);
    expect(h.log.at('warn')).toEqual([
      expect.objectContaining({ key: 'p', version: w.version, error: 'bad row', msg: 'write dead-lettered' }),
    ]);
  });

  it('logs, at error level, a dead letter the outbox could not record', async () => {
    const h = harness();
    h.write('p', 1);
    h.outbox.deadLetter = (_letter: DeadLetter) => {
      throw new Error('database or disk is full (injected)');
    };
    h.answer((writes) =>
      writes.map((): ApplyResult => ({ status: 'rejected', error: new Error('bad row') })),
    );
    await vi.advanceTimersByTimeAsync(10);
    const [line] = h.log.at('error');
    expect(errOf(line)).toBe('database or disk is full (injected)');
    expect(line?.msg).toMatch(/could not record a dead letter/);
    expect(h.calls).toEqual([]);
  });

  it('logs, at error level, acknowledged writes the outbox could not clear', async () => {
    const h = harness();
    h.write('a', 1);
    h.outbox.acknowledge = () => {
      throw new Error('disk I/O error (injected)');
    };
    await vi.advanceTimersByTimeAsync(10);
    const [line] = h.log.at('error');
    expect(errOf(line)).toBe('disk I/O error (injected)');
    expect(line?.msg).toMatch(/could not clear acknowledged writes/);
  });

  it('logs a misconfigured store and an adapter that broke its contract, each saying which', async () => {
    const h = harness();
    h.write('a', 1);
    h.answer(() => {
      throw new StorageConfigurationError('run migration 002');
    });
    await vi.advanceTimersByTimeAsync(10);
    h.answer(() => []);
    await vi.advanceTimersByTimeAsync(2_000);
    const errors = h.log.at('error');
    expect(errOf(errors[0])).toBe('run migration 002');
    expect(errors[0]?.msg).toMatch(/misconfigured/);
    expect(errors[1]?.msg).toMatch(/broke its contract/);
  });
});

describe('waiting for writes', () => {
  it('does not resolve when an older version of the key lands, only once the awaited one does', async () => {
    const h = harness();
    const first = h.write('a', 1);
    const second = h.accept('a', 2);
    h.latest.set('a', [first]); // the newer write is not pending yet: only the older one is sent
    let resolved = false;
    void h.flusher.waitFor(new Map([['a', second.version]])).done.then(() => {
      resolved = true;
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls).toEqual([`applied a@${first.version}`]);
    expect(resolved).toBe(false);
    h.latest.set('a', [second]);
    h.flusher.schedule('a');
    await vi.advanceTimersByTimeAsync(10);
    expect(resolved).toBe(true);
  });
});

describe('slots and order', () => {
  it('sends nothing, and reads nothing from the store, for slots with no ready key', async () => {
    let fail = true;
    const h = harness({
      anchored: false,
      concurrency: 3,
      mark: async () => {
        if (fail) throw new TransientStorageError('connection refused');
        return 0;
      },
    });
    h.write('a', 1);
    await vi.advanceTimersByTimeAsync(10);
    // One batch, one failed read of the mark, one retry.
    expect(h.markReads()).toBe(1);
    expect(h.flusher.retries).toBe(1);
    expect(h.events('retry')).toHaveLength(1);
    fail = false;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(h.sent).toHaveLength(1);
    expect(h.flusher.retries).toBe(1);
  });

  it('sends a write accepted before the anchor first, in the batch it was claimed for', async () => {
    const mark = markAhead();
    const h = harness({ anchored: false, batchSize: 1, mark: async () => mark });
    const early = h.accept('early', 1).version; // the pending write itself is re-versioned in place
    await h.anchor.ensure();
    h.flusher.schedule('early');
    const late = h.write('late', 2);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent.map((batch) => batch.map((w) => w.key))).toEqual([['early'], ['late']]);
    const moved = h.reversioned.get(early) as number;
    expect(moved).toBeGreaterThan(mark);
    expect(h.sent[0]?.[0]?.version).toBe(moved);
    expect(h.sent[1]?.[0]?.version).toBe(late.version);
    expect(late.version).toBeGreaterThan(moved);
  });
});

/** A store mark far ahead of this process's clock (another instance's wall clock an hour ahead). */
const markAhead = () => (Date.now() + 3_600_000) * LOGICAL_SLOTS;

describe('writes accepted before the clock was anchored', () => {
  it('are sent only once the anchoring step ran, with the versions it gave them', async () => {
    let answer: (mark: number) => void = () => {};
    const h = harness({ anchored: false, mark: () => new Promise<number>((resolve) => (answer = resolve)) });
    const value = h.write('a', 1);
    const oldValue = value.version;
    const append = h.acceptItems('l', 2);
    const oldItems = append.items?.map((i) => i.version) ?? [];
    h.flusher.schedule('l');
    await vi.advanceTimersByTimeAsync(100);
    // The mark was asked for, but nothing is sent before it is answered.
    expect(h.markReads()).toBe(1);
    expect(h.sent).toEqual([]);
    expect(h.flusher.retries).toBe(0);
    const mark = markAhead();
    answer(mark);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.marks).toEqual([mark]);
    const valueTo = h.reversioned.get(oldValue) as number;
    const itemsTo = oldItems.map((v) => h.reversioned.get(v) as number);
    expect(valueTo).toBeGreaterThan(mark);
    expect(h.sent).toEqual([
      [
        { key: 'a', version: valueTo, json: '1' },
        { key: 'l', version: Math.max(...itemsTo), json: null },
      ],
    ]);
    expect(h.calls).toEqual([`applied a@${valueTo}`, `applied l@${Math.max(...itemsTo)}`]);
  });

  it('keep their versions when all are above the mark', async () => {
    const h = harness({ anchored: false, mark: async () => 0 });
    const value = h.write('a', 1);
    const version = value.version;
    await vi.advanceTimersByTimeAsync(10);
    expect(h.marks).toEqual([0]);
    expect(h.reversioned.size).toBe(0);
    expect(h.sent).toEqual([[{ key: 'a', version, json: '1' }]]);
  });

  it('once anchored, later batches neither read the mark nor run the step again', async () => {
    const h = harness({ batchSize: 1 });
    h.write('a', 1);
    await vi.advanceTimersByTimeAsync(10);
    h.write('b', 2);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent.map((batch) => batch.map((w) => w.key))).toEqual([['a'], ['b']]);
    expect(h.markReads()).toBe(1);
    expect(h.marks).toHaveLength(1);
  });

  it('stay queued, unsent, while the anchoring step fails, and are sent once a retry succeeds', async () => {
    const mark = markAhead();
    const h = harness({ anchored: false, mark: async () => mark });
    const value = h.write('a', 1);
    const old = value.version;
    h.failSteps(new OutboxError('the outbox at /data/outbox.db could not record the write: disk full'));
    await vi.advanceTimersByTimeAsync(10);
    expect(h.marks).toEqual([mark]);
    expect(h.sent).toEqual([]);
    expect(h.flusher.retries).toBe(1);
    expect(h.events('retry')).toHaveLength(1);
    expect(h.reversioned.size).toBe(0);
    h.failSteps(undefined);
    await vi.advanceTimersByTimeAsync(2_000);
    // The retry read the mark again and ran the step again.
    expect(h.marks).toEqual([mark, mark]);
    expect(h.sent).toEqual([[{ key: 'a', version: h.reversioned.get(old), json: '1' }]]);
    expect(h.flusher.retries).toBe(1);
  });

  it('logs a step that fails for good at error level, saying writes stay queued', async () => {
    const h = harness({ anchored: false });
    h.write('a', 1);
    h.failSteps(new StorageConfigurationError('grant select on the entries table'));
    await vi.advanceTimersByTimeAsync(10);
    const [line] = h.log.at('error');
    expect(errOf(line)).toBe('grant select on the entries table');
    expect(line?.msg).toMatch(/cannot anchor the clock.*writes stay queued/);
    expect(h.sent).toEqual([]);
  });
});

describe("reading the store's high-water mark", () => {
  it('logs why at debug level when the store is unreachable at open', async () => {
    const h = harness({
      anchored: false,
      mark: async () => {
        throw new TransientStorageError('connection refused');
      },
    });
    h.flusher.anchorClock();
    await vi.advanceTimersByTimeAsync(0);
    const [line] = h.log.at('debug');
    expect(errOf(line)).toBe('connection refused');
    expect(line?.msg).toMatch(/not reachable at open/);
    expect(h.log.at('error')).toEqual([]);
  });

  it('keeps writes queued and says so at error level when the mark cannot be read for good', async () => {
    let failure: Error | undefined = new StorageConfigurationError('grant select on the entries table');
    const h = harness({
      anchored: false,
      mark: async () => {
        if (failure) throw failure;
        return 0;
      },
    });
    h.write('a', 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent).toEqual([]);
    expect(h.flusher.retries).toBe(1);
    const [line] = h.log.at('error');
    expect(errOf(line)).toBe('grant select on the entries table');
    expect(line?.msg).toMatch(/high-water mark/);
    failure = undefined;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(h.sent).toHaveLength(1);
  });

  it('does not log a transient failure to read the mark at error level', async () => {
    let fail = true;
    const h = harness({
      anchored: false,
      mark: async () => {
        if (fail) throw new TransientStorageError('connection reset');
        return 0;
      },
    });
    h.write('a', 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.flusher.retries).toBe(1);
    expect(h.log.at('error')).toEqual([]);
    fail = false;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(h.sent).toHaveLength(1);
  });
});

describe('stop', () => {
  it('while the mark is being read: counts no retry and sends nothing', async () => {
    const h = harness({
      anchored: false,
      // The store never answers; only the abort ends the read.
      mark: (signal) =>
        new Promise<number>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason))),
    });
    h.write('a', 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.markReads()).toBe(1);
    await h.flusher.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.sent).toEqual([]);
    expect(h.flusher.retries).toBe(0);
    expect(h.events('retry')).toEqual([]);
  });

  it('cancels an armed retry: no timer is left behind', async () => {
    const h = harness();
    h.write('a', 1);
    h.answer(() => {
      throw new TransientStorageError('connection reset');
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(h.flusher.retries).toBe(1);
    await h.flusher.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});
