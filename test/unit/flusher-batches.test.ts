import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ApplyResult,
  type DeadLetter,
  PermanentStorageError,
  type Storage,
  StorageConfigurationError,
  TransientStorageError,
  type VersionedWrite,
} from '../../src/index.js';
import { ClockAnchor } from '../../src/sync/clock-anchor.js';
import { Flusher } from '../../src/sync/flusher.js';
import { HybridLogicalClock } from '../../src/sync/hlc.js';
import { MemoryOutbox, type Remint } from '../../src/sync/outbox/outbox.js';
import type { PendingWrites } from '../../src/sync/pending-writes.js';
import { StoreGuard } from '../../src/sync/store-guard.js';
import type { FlushEventSink, FlushEvents } from '../../src/sync/types.js';
import { capturingLogger, type LogLine } from '../helpers/cache.js';

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
}

/** An outbox that records re-mints and can be made to refuse them, as a full disk would. */
class RecordingOutbox extends MemoryOutbox {
  readonly remints: Remint[][] = [];
  failRemint = false;

  override remint(changes: readonly Remint[] = []): void {
    if (this.failRemint) throw new Error('database or disk is full (injected)');
    this.remints.push([...changes]);
  }
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
      sent.push(writes.map(({ key, version, json }) => ({ key, version, json })));
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
    reminted: (key, from, to, endsLogAt) => calls.push(`reminted ${key} ${from}->${to} ends ${endsLogAt}`),
    applied: forget('applied'),
    alreadyStored: forget('alreadyStored'),
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
  const anchor = new ClockAnchor(clock, (signal) => storage.highWaterMark({ signal }));
  const outbox = new RecordingOutbox();
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
    if (!anchored) anchor.minted(version);
    const write = { key, version, json: JSON.stringify(value), expiresAt: null, ...extra } as VersionedWrite;
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
    write,
    markReads: () => markReads,
    answer: (next: typeof answer) => {
      answer = next;
    },
  };
}

const errOf = (line: LogLine | undefined) => (line?.err as { message?: string } | undefined)?.message;

describe('log ends: a value that replaced an unflushed delete', () => {
  it('is sent just after a tombstone at its end, and only it counts as flushed', async () => {
    const h = harness();
    const plain = h.write('a', 1);
    const ending = h.write('b', 2, { endsLogAt: 1_000 });
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent).toEqual([
      [
        { key: 'a', version: plain.version, json: '1' },
        { key: 'b', version: 1_000, json: null },
        { key: 'b', version: ending.version, json: '2' },
      ],
    ]);
    expect(h.calls).toEqual([`applied a@${plain.version}`, `applied b@${ending.version}`]);
    expect(h.events('flushed')).toEqual([{ count: 2, keys: ['a', 'b'] }]);
  });

  it('a tombstone the store refuses for good is dropped, and the value is still written', async () => {
    const h = harness();
    const ending = h.write('b', 2, { endsLogAt: 1_000 });
    h.answer((writes) =>
      writes.map(
        (w): ApplyResult =>
          w.json === null
            ? { status: 'rejected', error: new Error('no tombstones here') }
            : { status: 'applied' },
      ),
    );
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls).toEqual([`applied b@${ending.version}`]);
    expect(h.events('deadLetter')).toEqual([]);
    expect(h.outbox.deadLetters()).toEqual([]);
  });

  it('when a whole batch is refused for good, splits it, drops the tombstone and dead-letters only the value', async () => {
    const h = harness();
    const ending = h.write('p', 'poison', { endsLogAt: 1_000 });
    h.answer(() => {
      throw new PermanentStorageError('violates a check constraint');
    });
    await vi.advanceTimersByTimeAsync(10);
    // The pair, then each half on its own.
    expect(h.sent.map((batch) => batch.map((w) => w.version))).toEqual([
      [1_000, ending.version],
      [1_000],
      [ending.version],
    ]);
    expect(h.outbox.deadLetters()).toMatchObject([
      { key: 'p', version: ending.version, json: '"poison"', error: 'violates a check constraint' },
    ]);
    expect(h.calls).toEqual([`deadLettered p@${ending.version}`]);
    expect(h.flusher.retries).toBe(0);
  });

  it('a tombstone refused for good alone is neither dead-lettered nor retried', async () => {
    const h = harness();
    const ending = h.write('b', 2, { endsLogAt: 1_000 });
    h.answer((writes) => {
      if (writes.some((w) => w.json === null)) throw new PermanentStorageError('tombstones refused');
      return writes.map((): ApplyResult => ({ status: 'applied' }));
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent.map((batch) => batch.length)).toEqual([2, 1, 1]);
    expect(h.calls).toEqual([`applied b@${ending.version}`]);
    expect(h.outbox.deadLetters()).toEqual([]);
    expect(h.events('deadLetter')).toEqual([]);
  });
});

describe('what the store answers for each write', () => {
  it('a stale answer without a stored version means the store already held ours', async () => {
    const h = harness();
    const w = h.write('a', 1);
    h.answer((writes) => writes.map((): ApplyResult => ({ status: 'stale' })));
    await vi.advanceTimersByTimeAsync(10);
    expect(h.calls).toEqual([`alreadyStored a@${w.version}`]);
    expect(h.events('superseded')).toEqual([]);
    expect(h.events('flushed')).toEqual([{ count: 1, keys: ['a'] }]);
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
    const h = harness({ anchored: false, batchSize: 1 });
    const early = h.accept('early', 1).version; // the write object itself is re-minted in place
    await h.anchor.ensure();
    h.flusher.schedule('early');
    const late = h.write('late', 2);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent.map((batch) => batch.map((w) => w.key))).toEqual([['early'], ['late']]);
    expect(h.sent[0]?.[0]?.version).toBe(h.anchor.remintedVersion(early));
    expect(h.sent[1]?.[0]?.version).toBe(late.version);
  });
});

describe('writes accepted before the clock was anchored', () => {
  it('get their reserved versions in the outbox, in memory (values only) and when sent', async () => {
    const h = harness({ anchored: false });
    const value = { ...h.accept('a', 1) }; // as accepted: the pending write is re-minted in place
    const itemVersion = h.clock.next();
    h.anchor.minted(itemVersion);
    const append: VersionedWrite = {
      key: 'l',
      version: itemVersion,
      json: null,
      expiresAt: null,
      appendedAt: 0,
      items: [{ id: 'item-1', version: itemVersion, json: '"x"' }],
    };
    h.latest.set('l', [append]);
    h.flusher.schedule('a');
    h.flusher.schedule('l');
    await vi.advanceTimersByTimeAsync(10);
    const valueTo = h.anchor.remintedVersion(value.version);
    const itemTo = h.anchor.remintedVersion(itemVersion);
    expect(h.outbox.remints).toEqual([
      [
        { key: 'a', from: value.version, to: valueTo },
        { key: 'l', from: itemVersion, to: itemTo, itemId: 'item-1' },
      ],
    ]);
    // Items are changed in place; only the value's new version is told to memory.
    expect(h.calls.filter((c) => c.startsWith('reminted'))).toEqual([
      `reminted a ${value.version}->${valueTo} ends undefined`,
    ]);
    expect(h.sent).toEqual([
      [
        { key: 'a', version: valueTo, json: '1' },
        { key: 'l', version: itemTo, json: null },
      ],
    ]);
    expect(h.anchor.needsRemint(value.version)).toBe(false);
    expect(h.anchor.needsRemint(itemVersion)).toBe(false);
    expect(h.log.at('debug')).toContainEqual(
      expect.objectContaining({ count: 2, msg: expect.stringMatching(/^re-minted writes accepted before/) }),
    );
  });

  it('touch no outbox row when every write was accepted after the anchor', async () => {
    const h = harness();
    h.write('a', 1);
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent).toHaveLength(1);
    expect(h.outbox.remints).toEqual([]);
  });

  it('stay queued, unsent, while the outbox cannot record their new versions', async () => {
    const h = harness({ anchored: false });
    const value = { ...h.write('a', 1) };
    h.outbox.failRemint = true;
    await vi.advanceTimersByTimeAsync(10);
    expect(h.sent).toEqual([]);
    expect(h.flusher.retries).toBe(1);
    expect(h.events('retry')).toHaveLength(1);
    const [line] = h.log.at('error');
    expect(errOf(line)).toBe('database or disk is full (injected)');
    expect(line?.msg).toMatch(/could not record new versions/);
    h.outbox.failRemint = false;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(h.sent).toEqual([[{ key: 'a', version: h.anchor.remintedVersion(value.version), json: '1' }]]);
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
