import { describe, expect, it } from 'vitest';
import { entryBytes } from '../../../src/cache/entry.js';
import { MemoryTier } from '../../../src/cache/memory-tier.js';
import { WritePipeline } from '../../../src/cache/write-pipeline.js';
import { ClosedError } from '../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../src/storage/contract/version.js';
import { ClockAnchor } from '../../../src/sync/clock/clock-anchor.js';
import { HybridLogicalClock } from '../../../src/sync/clock/hlc.js';
import type {
  Acknowledged,
  Outbox,
  PendingItem,
  PendingWrite,
  VersionChange,
} from '../../../src/sync/outbox/outbox.js';
import type { DeadLetter } from '../../../src/sync/types.js';
import { turns } from '../../helpers/outbox.js';

/**
 * A durable outbox kept in memory that records every row appended and every anchoring transaction;
 * it can hold appends until the test lets them finish, refuse them, and fail the anchoring step.
 */
class ScriptedOutbox implements Outbox {
  readonly durable = true;
  readonly failure = undefined;
  readonly lost = false;
  /** Rows committed, in order. */
  readonly rows: Array<PendingWrite | PendingItem> = [];
  /** Appends waiting for `releaseAll`. */
  readonly held: Array<{ row: PendingWrite | PendingItem; resolve: () => void }> = [];
  /** Every call of `anchor`, the failed ones included. */
  readonly anchorCalls: VersionChange[][] = [];
  /** The calls of `anchor` that committed. */
  readonly anchored: VersionChange[][] = [];
  /** What each call of `anchor` said every row up to is anchored. */
  readonly anchoredThrough: number[] = [];
  holding = false;
  refusal: Error | undefined;
  anchorFailure: Error | undefined;

  append(row: PendingWrite | PendingItem): Promise<void> {
    if (this.refusal) return Promise.reject(this.refusal);
    if (!this.holding) {
      this.rows.push(structuredClone(row));
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.held.push({
        row,
        resolve: () => {
          this.rows.push(structuredClone(row));
          resolve();
        },
      }),
    );
  }

  /** Lets the oldest held append finish. */
  releaseFirst(): void {
    this.held.shift()?.resolve();
  }

  releaseAll(): void {
    this.holding = false;
    for (const { resolve } of this.held.splice(0)) resolve();
  }

  anchor(changes: readonly VersionChange[], anchoredThrough: number): void {
    this.anchorCalls.push([...changes]);
    this.anchoredThrough.push(anchoredThrough);
    if (this.anchorFailure) throw this.anchorFailure;
    this.anchored.push([...changes]);
  }

  pending(): PendingWrite[] {
    return [];
  }
  pendingItems(): PendingItem[] {
    return [];
  }
  quarantineDamaged(): DeadLetter[] {
    return [];
  }
  highestVersion(): number {
    return 0;
  }
  reservedVersions(): Array<[number, number]> {
    return [];
  }
  /** Every call of `acknowledge`, in order. */
  readonly acknowledged: Acknowledged[][] = [];
  acknowledge(writes: readonly Acknowledged[]): void {
    this.acknowledged.push(structuredClone([...writes]));
  }
  deadLetter(): void {}
  deadLetters(): DeadLetter[] {
    return [];
  }
  requeueDeadLetters(): DeadLetter[] {
    return [];
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A store far ahead of this process's clock (another instance's wall clock an hour ahead). */
const markAhead = () => (Date.now() + 3_600_000) * LOGICAL_SLOTS;

/**
 * A write pipeline over memory, that outbox and a clock anchored by the pipeline's own step; the
 * store's mark is `mark`, read when the test calls `anchor.ensure()`.
 */
function setup(mark: () => number = markAhead) {
  const tier = new MemoryTier({ maxEntries: 100, maxBytes: 1_000_000, onEvict: () => {} });
  const outbox = new ScriptedOutbox();
  const clock = new HybridLogicalClock();
  const written: Array<[string, number]> = [];
  let coalesced = 0;
  const anchor: ClockAnchor = new ClockAnchor(
    async () => mark(),
    (observed) => pipeline.anchorAt(observed),
  );
  const pipeline: WritePipeline = new WritePipeline({
    tier,
    outbox,
    clock,
    anchor,
    maxPendingBytes: 1_000_000,
    listener: {
      written: (key, version) => written.push([key, version]),
      schedule: () => {},
      isInFlight: () => false,
      coalesced: () => {
        coalesced++;
      },
      outboxHealed: () => {},
    },
  });
  const set = (key: string, value: unknown) => {
    const json = JSON.stringify(value);
    return pipeline.writeValue(key, json, null, entryBytes(key, json.length));
  };
  const del = (key: string) => pipeline.writeValue(key, null, null, entryBytes(key, 0));
  const append = (key: string, value: unknown) => pipeline.appendItem(key, JSON.stringify(value), null);
  const valueVersion = (key: string) => tier.dirty.get(key)?.version;
  const itemVersions = (key: string) => tier.pendingLogs.get(key)?.items.map((i) => i.version) ?? [];
  return {
    tier,
    outbox,
    clock,
    anchor,
    pipeline,
    written,
    coalesced: () => coalesced,
    set,
    del,
    append,
    valueVersion,
    itemVersions,
  };
}

describe('WritePipeline.anchorAt: writes minted before the mark was read', () => {
  it('all get new versions above the mark, in the order of the old ones, in the outbox and memory at once', async () => {
    const h = setup();
    await h.set('a', 1);
    await h.append('log', 'x');
    await h.set('b', 2);
    await h.append('log', 'y');
    const olds = {
      a: h.valueVersion('a') as number,
      b: h.valueVersion('b') as number,
      log: h.itemVersions('log'),
    };
    // Every row went into the outbox marked unanchored.
    expect(h.outbox.rows.map((row) => row.unanchored)).toEqual([true, true, true, true]);

    const mark = markAhead();
    await h.pipeline.anchorAt(mark);
    expect(h.anchor.anchored).toBe(true);
    const [changes] = h.outbox.anchored as [VersionChange[]];
    expect(h.outbox.anchored).toHaveLength(1);
    const to = new Map(changes.map((c) => [c.from, c.to]));
    const news = [olds.a, olds.log[0], olds.b, olds.log[1]].map((v) => to.get(v as number) as number);
    expect(news[0]).toBeGreaterThan(mark);
    expect([...news].sort((x, y) => x - y)).toEqual(news);
    // Memory holds exactly the versions the outbox was given.
    expect(h.valueVersion('a')).toBe(news[0]);
    expect(h.valueVersion('b')).toBe(news[2]);
    expect(h.itemVersions('log')).toEqual([news[1], news[3]]);
    expect(changes.filter((c) => c.itemId !== undefined).map((c) => c.itemId)).toEqual(
      h.tier.pendingLogs.get('log')?.items.map((i) => i.id),
    );
    // Reads in flight learn of each new version (they would otherwise cache the older one).
    expect(h.written.slice(4)).toEqual(changes.map((c) => [c.key, c.to]));
    // The outbox is told every row is anchored up to the newest of them.
    expect(h.outbox.anchoredThrough).toEqual([Math.max(...news)]);
    // Minted after: above all of them, and anchored.
    await h.set('c', 3);
    expect(h.valueVersion('c')).toBeGreaterThan(Math.max(...news));
    expect(h.outbox.rows.at(-1)).toMatchObject({ key: 'c', unanchored: false });
  });

  it('keep their versions when all are above the mark, and the outbox is still told the clock is anchored', async () => {
    const h = setup(() => 0);
    await h.set('a', 1);
    await h.append('log', 'x');
    const before = [h.valueVersion('a'), ...h.itemVersions('log')];
    await h.anchor.ensure();
    expect(h.anchor.anchored).toBe(true);
    // One anchoring transaction, with no new versions: it only marks the rows anchored, up to the
    // newest version minted.
    expect(h.outbox.anchored).toEqual([[]]);
    expect(h.outbox.anchoredThrough).toEqual([Math.max(...(before as number[]))]);
    expect([h.valueVersion('a'), ...h.itemVersions('log')]).toEqual(before);
    expect(h.written).toHaveLength(2);
  });

  it("move a value's log floor with the write that set it", async () => {
    const h = setup();
    await h.del('k');
    await h.set('k', 'back'); // written over the unflushed delete: ends the older items below itself
    const old = h.valueVersion('k') as number;
    expect(h.tier.dirty.get('k')?.logFloor).toBe(old - 1);
    await h.anchor.ensure();
    const moved = h.valueVersion('k') as number;
    expect(moved).toBeGreaterThan(old);
    expect(h.tier.dirty.get('k')?.logFloor).toBe(moved - 1);
    expect(h.outbox.anchored).toEqual([[{ key: 'k', from: old, to: moved, logFloor: moved - 1 }]]);
  });

  it('a write the outbox refused gets no new version; the others do', async () => {
    const h = setup();
    await h.set('kept', 1);
    h.outbox.refusal = new Error('database or disk is full (injected)');
    await expect(h.set('refused', 2)).rejects.toThrow('disk is full');
    await expect(h.append('refused-log', 'x')).rejects.toThrow('disk is full');
    h.outbox.refusal = undefined;
    await h.anchor.ensure();
    expect(h.outbox.anchored).toEqual([
      [{ key: 'kept', from: expect.any(Number), to: h.valueVersion('kept') }],
    ]);
    expect(h.tier.dirty.has('refused')).toBe(false);
    expect(h.tier.pendingLogs.has('refused-log')).toBe(false);
  });
});

describe('WritePipeline.anchorAt and writes on their way', () => {
  it('waits for writes still being appended to the outbox, then re-versions them too', async () => {
    const h = setup();
    h.outbox.holding = true;
    const first = h.set('a', 1);
    const second = h.append('log', 'x');
    const anchoring = h.anchor.ensure();
    await turns();
    // The step waits: the appends are still held, nothing was planned or written.
    expect(h.outbox.held).toHaveLength(2);
    expect(h.outbox.anchorCalls).toEqual([]);
    expect(h.anchor.anchored).toBe(false);
    h.outbox.releaseAll();
    await Promise.all([first, second, anchoring]);
    expect(h.anchor.anchored).toBe(true);
    const [changes] = h.outbox.anchored as [VersionChange[]];
    expect(changes.map((c) => c.key)).toEqual(['a', 'log']);
    expect(h.valueVersion('a')).toBe(changes[0]?.to);
    expect(h.itemVersions('log')).toEqual([changes[1]?.to]);
  });

  it('holds writes that arrive during the step; they are minted after it, above every re-versioned write', async () => {
    const h = setup();
    h.outbox.holding = true;
    const early = h.set('early', 1);
    const anchoring = h.anchor.ensure();
    await turns();
    expect(h.outbox.held).toHaveLength(1);
    // Arrive while the step waits for the early write.
    const late = [h.set('late', 2), h.append('late-log', 'x'), h.del('early')];
    await turns();
    // Not even sent to the outbox yet: only the early write is held.
    expect(h.outbox.held.map((held) => held.row.key)).toEqual(['early']);
    expect(h.tier.dirty.has('late')).toBe(false);
    h.outbox.releaseAll();
    await Promise.all([early, anchoring, ...late]);

    const [changes] = h.outbox.anchored as [VersionChange[]];
    expect(changes).toEqual([{ key: 'early', from: expect.any(Number), to: expect.any(Number) }]);
    const reversioned = changes[0]?.to as number;
    // Rows said anchored stop at the re-versioned write: the held writes are all above.
    expect(h.outbox.anchoredThrough).toEqual([reversioned]);
    const lateVersions = [h.valueVersion('late') as number, ...h.itemVersions('late-log')];
    for (const version of lateVersions) expect(version).toBeGreaterThan(reversioned);
    // The delete that waited is newer than the re-versioned write it replaces.
    expect(h.tier.dirty.get('early')).toMatchObject({ deleted: true });
    expect(h.valueVersion('early')).toBeGreaterThan(reversioned);
    // They went into the outbox anchored.
    expect(h.outbox.rows.slice(1).map((row) => [row.key, row.unanchored])).toEqual([
      ['late', false],
      ['late-log', false],
      ['early', false],
    ]);
  });
});

describe('WritePipeline.anchorAt when the outbox cannot record the new versions', () => {
  it('changes nothing in memory, stays unanchored, and the next attempt re-versions every write', async () => {
    const h = setup();
    await h.del('k');
    await h.set('k', 'back');
    await h.append('log', 'x');
    const before = {
      value: h.valueVersion('k'),
      floor: h.tier.dirty.get('k')?.logFloor,
      items: h.itemVersions('log'),
      written: [...h.written],
    };
    h.outbox.anchorFailure = new Error('database or disk is full (injected)');
    await expect(h.anchor.ensure()).rejects.toThrow('database or disk is full (injected)');
    // The step ran and was refused...
    expect(h.outbox.anchorCalls).toHaveLength(1);
    expect(h.outbox.anchored).toEqual([]);
    // ...and memory is as it was: same versions, same floor, nothing told to reads.
    expect(h.anchor.anchored).toBe(false);
    expect(h.valueVersion('k')).toBe(before.value);
    expect(h.tier.dirty.get('k')?.logFloor).toBe(before.floor);
    expect(h.itemVersions('log')).toEqual(before.items);
    expect(h.written).toEqual(before.written);

    // A write in between is still minted unanchored, and is re-versioned with the rest.
    await h.set('between', 1);
    expect(h.outbox.rows.at(-1)).toMatchObject({ key: 'between', unanchored: true });
    h.outbox.anchorFailure = undefined;
    await h.anchor.ensure();
    expect(h.anchor.anchored).toBe(true);
    const [changes] = h.outbox.anchored as [VersionChange[]];
    expect(changes.map((c) => c.key).sort()).toEqual(['between', 'k', 'log']);
    expect(h.valueVersion('k')).toBeGreaterThan(before.value as number);
    expect(h.tier.dirty.get('k')?.logFloor).toBe((h.valueVersion('k') as number) - 1);
    expect(h.itemVersions('log')[0]).toBeGreaterThan(before.items[0] as number);
  });

  it('lets the writes held during the failed step through once it ends', async () => {
    const h = setup();
    h.outbox.holding = true;
    const early = h.set('early', 1);
    h.outbox.anchorFailure = new Error('database or disk is full (injected)');
    const anchoring = h.anchor.ensure();
    await turns();
    const late = h.set('late', 2);
    h.outbox.releaseAll();
    await expect(anchoring).rejects.toThrow('disk is full');
    await Promise.all([early, late]);
    expect(h.anchor.anchored).toBe(false);
    expect(h.tier.dirty.has('late')).toBe(true);
    expect(h.outbox.rows.map((row) => [row.key, row.unanchored])).toEqual([
      ['early', true],
      ['late', true],
    ]);
  });

  it('records the versions an outbox of the previous release reserved with the next anchor that succeeds, once', async () => {
    const h = setup(() => 0);
    const reserved: VersionChange = { key: 'old', from: 50, to: 9_000 };
    h.pipeline.reservedRow(reserved);
    h.outbox.anchorFailure = new Error('database or disk is full (injected)');
    await expect(h.anchor.ensure()).rejects.toThrow('disk is full');
    h.outbox.anchorFailure = undefined;
    await h.anchor.ensure();
    // Recorded even though nothing needed a new version, and kept for the retry after the failure.
    expect(h.outbox.anchorCalls).toEqual([[reserved], [reserved]]);
    await h.pipeline.anchorAt(0);
    expect(h.outbox.anchorCalls.at(-1)).toEqual([]);
  });
});

const letter = (key: string, version: number, json: string | null, itemId?: string): DeadLetter => ({
  key,
  version,
  json,
  expiresAt: null,
  ...(itemId !== undefined ? { itemId } : {}),
  error: 'refused by the store (injected)',
  failedAt: 0,
});

describe('WritePipeline: what the anchoring step waits for', () => {
  it('runs only once every write on its way into the outbox is in, not when the first of them is', async () => {
    const h = setup();
    h.outbox.holding = true;
    const first = h.set('a', 1);
    const second = h.append('log', 'x');
    const anchoring = h.anchor.ensure();
    await turns();
    h.outbox.releaseFirst();
    await turns();
    // The first write is in memory; the step still waits for the second.
    expect(h.tier.dirty.has('a')).toBe(true);
    expect(h.outbox.anchorCalls).toEqual([]);
    expect(h.anchor.anchored).toBe(false);
    h.outbox.releaseAll();
    await Promise.all([first, second, anchoring]);
    const [changes] = h.outbox.anchored as [VersionChange[]];
    expect(changes.map((c) => c.key)).toEqual(['a', 'log']);
    expect(h.itemVersions('log')).toEqual([changes[1]?.to]);
  });
});

describe('WritePipeline: dead letters re-queued before the anchor', () => {
  it('keep their versions through the anchoring step, which re-versions the writes minted here', async () => {
    const h = setup();
    const now = Date.now();
    h.pipeline.requeue(letter('dead', 1_000, '"v"'), now);
    h.pipeline.requeue(letter('dead-log', 1_001, '"i"', 'item-1'), now);
    await h.set('fresh', 1);
    await h.anchor.ensure();
    const [changes] = h.outbox.anchored as [VersionChange[]];
    expect(changes.map((c) => c.key)).toEqual(['fresh']);
    expect(h.valueVersion('dead')).toBe(1_000);
    expect(h.itemVersions('dead-log')).toEqual([1_001]);
  });

  it('an item dead letter without json comes back as a null item', () => {
    const h = setup();
    h.pipeline.requeue(letter('dead-log', 1_001, null, 'item-1'), Date.now());
    const items = h.tier.pendingLogs.get('dead-log')?.items ?? [];
    expect(h.tier.itemValues(items)).toEqual([null]);
  });

  it('one older than the value memory holds changes nothing: no write is told to reads, none is coalesced', async () => {
    const h = setup();
    await h.set('k', 'new');
    const newer = h.valueVersion('k') as number;
    const told = h.written.length;
    h.pipeline.requeue(letter('k', newer - 5, '"old"'), Date.now());
    expect(h.tier.lookup('k')).toBe('new');
    expect(h.valueVersion('k')).toBe(newer);
    expect(h.written).toHaveLength(told);
    expect(h.coalesced()).toBe(0);
    // A dead letter nothing newer shadows is taken, and reads are told.
    h.pipeline.requeue(letter('other', newer - 5, '"old"'), Date.now());
    expect(h.written.at(-1)).toEqual(['other', newer - 5]);
  });
});

describe('WritePipeline: unflushed items a value write ends', () => {
  it('a delete drops them from the outbox too', async () => {
    const h = setup();
    await h.append('log', 'x');
    await h.append('log', 'y');
    const ids = h.tier.pendingLogs.get('log')?.items.map((item) => item.id);
    await h.del('log');
    expect(h.tier.pendingLogs.has('log')).toBe(false);
    expect(h.outbox.acknowledged).toHaveLength(1);
    const [[dropped]] = h.outbox.acknowledged as [[Acknowledged]];
    expect(dropped).toMatchObject({ key: 'log', version: 0 });
    expect(dropped.items?.map((item) => item.id)).toEqual(ids);
  });

  it('a value over a live value keeps them, in memory and in the outbox', async () => {
    const h = setup();
    await h.set('log', 1);
    await h.append('log', 'x');
    await h.set('log', 2);
    expect(h.tier.pendingLogs.get('log')?.items).toHaveLength(1);
    expect(h.tier.lookup('log')).toBe(2);
    expect(h.outbox.acknowledged).toEqual([]);
  });
});

describe('WritePipeline.close and writes held by a step', () => {
  it('refuses with ClosedError a write that waited for the step when close came meanwhile', async () => {
    const h = setup();
    h.outbox.holding = true;
    const early = h.set('early', 1);
    const anchoring = h.anchor.ensure();
    await turns();
    const late = h.set('late', 2).catch((error: unknown) => error);
    const closing = h.pipeline.close();
    h.outbox.releaseAll();
    await Promise.all([early, anchoring, closing]);
    expect(await late).toBeInstanceOf(ClosedError);
    expect(h.tier.dirty.has('late')).toBe(false);
    expect(h.outbox.rows.map((row) => row.key)).toEqual(['early']);
  });
});
