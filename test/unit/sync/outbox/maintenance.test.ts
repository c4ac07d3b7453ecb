import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger } from '../../../helpers/cache.js';
import {
  descriptorsOf,
  pendingItem as item,
  rowsAfterCrash,
  turns,
  pendingValue as value,
} from '../../../helpers/outbox.js';
import { TestEnvironment } from '../../../helpers/outbox-environment.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-maint-'));
  path = join(dir, 'outbox.db');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const sizeOf = (p: string) => statSync(p, { throwIfNoEntry: false })?.size ?? 0;

const rowsOnDisk = () => rowsAfterCrash(path);

describe('acknowledged rows are deleted a chunk per turn of the event loop', () => {
  it('32 rows per turn, until none is left', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all(Array.from({ length: 100 }, (_, i) => outbox.append(value(`k${i}`, i + 1))));
    expect(rowsOnDisk()).toEqual({ values: 100, items: 0 });
    outbox.acknowledge(Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, version: i + 1 })));
    // Nothing is deleted inside acknowledge: the caller is not held up.
    expect(rowsOnDisk()).toEqual({ values: 100, items: 0 });
    const left: number[] = [];
    for (let turn = 0; turn < 5; turn++) {
      await nextTurn();
      left.push(rowsOnDisk().values);
    }
    expect(left).toEqual([68, 36, 4, 0, 0]);
    outbox.close();
  });

  it('values first, then items, 32 rows in all per turn', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => outbox.append(value(`k${i}`, i + 1))),
      ...Array.from({ length: 20 }, (_, i) => outbox.append(item('log', `i${i}`, 100 + i))),
    ]);
    outbox.acknowledge([
      ...Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, version: i + 1 })),
      {
        key: 'log',
        version: 119,
        items: Array.from({ length: 20 }, (_, i) => ({ id: `i${i}`, version: 100 + i, json: '""' })),
      },
    ]);
    await nextTurn();
    expect(rowsOnDisk()).toEqual({ values: 0, items: 8 });
    await nextTurn();
    expect(rowsOnDisk()).toEqual({ values: 0, items: 0 });
    expect(outbox.highestVersion()).toBe(119);
    outbox.close();
  });

  it('acknowledgements made while a chunk is scheduled join it; one chunk at a time', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all(Array.from({ length: 40 }, (_, i) => outbox.append(value(`k${i}`, i + 1))));
    outbox.acknowledge(Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, version: i + 1 })));
    outbox.acknowledge(Array.from({ length: 20 }, (_, i) => ({ key: `k${20 + i}`, version: 21 + i })));
    await nextTurn();
    expect(rowsOnDisk().values).toBe(8);
    await nextTurn();
    expect(rowsOnDisk().values).toBe(0);
    outbox.close();
  });
});

describe('background maintenance', () => {
  it('gives the log’s disk space back once nothing is pending', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 10 });
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => outbox.append(value(`k${i}`, i + 1, `"${'x'.repeat(500)}"`))),
    );
    expect(sizeOf(`${path}-wal`)).toBeGreaterThan(0);
    outbox.acknowledge(Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, version: i + 1 })));
    await vi.waitFor(() => expect(sizeOf(`${path}-wal`)).toBe(0), { timeout: 5_000, interval: 5 });
    expect(outbox.checkpoints).toBeGreaterThan(0);
    expect(outbox.pending()).toEqual([]);
    outbox.close();
  });

  it('leaves an idle outbox alone once its log is empty: no checkpoint on every tick', async () => {
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({ path, durability: 'process', environment: env });
    await outbox.append(value('a', 1));
    outbox.acknowledge([{ key: 'a', version: 1 }]);
    await turns(2);
    env.tick(); // checkpoints the deletion in the background
    await turns(2);
    env.tick(); // idle, nothing pending: empties the log
    expect(sizeOf(`${path}-wal`)).toBe(0);
    const checkpoints = outbox.checkpoints;
    // Several more ticks, idle: each measures the disk, none checkpoints.
    const measured = env.measurements;
    for (let i = 0; i < 3; i++) env.tick();
    expect(env.measurements).toBe(measured + 3);
    expect(outbox.checkpoints).toBe(checkpoints);
    expect(sizeOf(`${path}-wal`)).toBe(0);
    outbox.close();
  });

  it('stops its tick when closed: a closed outbox measures nothing more', async () => {
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({ path, durability: 'process', environment: env });
    expect(env.repeating).toBe(1);
    env.tick();
    const measured = env.measurements;
    expect(measured).toBeGreaterThan(0);
    await outbox.close();
    expect(env.repeating).toBe(0);
    env.tick();
    expect(env.measurements).toBe(measured);
  });

  it('checkpoints what was written, keeping the log file while writes are pending', async () => {
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({ path, durability: 'process', environment: env });
    await outbox.append(value('a', 1));
    env.tick();
    await turns(2);
    expect(outbox.checkpoints).toBe(1);
    // Several more ticks with the row still pending: each measures the disk, none checkpoints.
    const measured = env.measurements;
    for (let i = 0; i < 3; i++) env.tick();
    expect(env.measurements).toBe(measured + 3);
    expect(outbox.checkpoints).toBe(1);
    expect(sizeOf(`${path}-wal`)).toBeGreaterThan(0);
    expect(outbox.pending().map((p) => p.key)).toEqual(['a']);
    outbox.close();
  });
});

describe('an outbox capped by maxFileBytes', () => {
  const cap = 256 * 1024;
  const kilobyte = (i: number) => JSON.stringify({ i, text: 'x'.repeat(1_000) });

  async function fill(outbox: SqliteOutbox): Promise<{ accepted: number; error: OutboxError }> {
    for (let i = 0; i < 2_000; i++) {
      try {
        await outbox.append(value(`k${i}`, i + 1, kilobyte(i)));
      } catch (error) {
        expect(error).toBeInstanceOf(OutboxError);
        return { accepted: i, error: error as OutboxError };
      }
      expect(sizeOf(path) + sizeOf(`${path}-wal`)).toBeLessThanOrEqual(cap);
    }
    throw new Error('the capped outbox never refused a write');
  }

  /** Under the cap, with no background maintenance during the test. */
  const cappedQuiet = () =>
    SqliteOutbox.open({ path, durability: 'process', maxFileBytes: cap, maintenanceIntervalMs: 60_000 });
  // Half of what the cap leaves the log; well below the point where a commit must make room first.
  const checkpointThreshold = Math.floor((cap - Math.floor((cap - 32) / (4096 + 4096 + 24)) * 4096) / 2);

  it('keeps the file and its log under the cap, and says the cap was reached when full', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process', maxFileBytes: cap });
    const { accepted, error } = await fill(outbox);
    expect(accepted).toBeGreaterThan(20);
    expect(error.message).toMatch(
      /^the outbox at .* could not record the write: .*\(outbox\.maxFileBytes reached/,
    );
    expect(outbox.failure).toBe(error);
    expect(outbox.checkpoints).toBeGreaterThan(0);
    expect(outbox.pending()).toHaveLength(accepted);
    outbox.close();
  });

  it('a log grown past its threshold (half the log budget) is checkpointed after the commit, in the background', async () => {
    const outbox = cappedQuiet();
    let i = 0;
    while (sizeOf(`${path}-wal`) < checkpointThreshold + 4096 && outbox.checkpoints === 0) {
      await outbox.append(value(`k${i}`, ++i, kilobyte(i)));
    }
    await vi.waitFor(() => expect(outbox.checkpoints).toBeGreaterThan(0), { timeout: 5_000, interval: 5 });
    expect(outbox.pending()).toHaveLength(i);
    outbox.close();
  });

  it('close resolves only once no descriptor of the file or its log is left, even with a log sync under way', async () => {
    const outbox = cappedQuiet();
    let i = 0;
    // The commit that takes the log past its threshold starts a sync of the log on the thread pool.
    while (sizeOf(`${path}-wal`) < checkpointThreshold + 4096)
      await outbox.append(value(`k${i}`, ++i, kilobyte(i)));
    const closing = outbox.close();
    expect(descriptorsOf(path)).not.toEqual([]);
    // A second close waits for the same release.
    await outbox.close();
    expect(descriptorsOf(path)).toEqual([]);
    await closing;
    // A deleted log held open keeps its disk space: a process reopening on a full disk needs it back.
    expect(descriptorsOf(path)).toEqual([]);
  });

  it('large values and items spanning many pages: the file and its log stay under the cap', async () => {
    const outbox = cappedQuiet();
    const big = (i: number) => JSON.stringify({ i, text: 'y'.repeat(20_000) });
    for (let i = 1; i <= 40; i++) {
      const written =
        i % 2 === 0
          ? outbox.append(value(`k${i % 4}`, i, big(i)))
          : outbox.append({
              key: 'log',
              item: { id: `i${i}`, version: i, json: big(i) },
              expiresAt: null,
              queuedAt: i,
            });
      await written;
      expect(sizeOf(path) + sizeOf(`${path}-wal`)).toBeLessThanOrEqual(cap);
      if (i % 4 === 0) {
        outbox.acknowledge([
          ...outbox.pending().map((p) => ({ key: p.key, version: p.version })),
          { key: 'log', version: i, items: outbox.pendingItems().map((p) => p.item) },
        ]);
        await nextTurn();
        expect(sizeOf(path) + sizeOf(`${path}-wal`)).toBeLessThanOrEqual(cap);
      }
    }
    outbox.close();
  });

  it('in memory: refuses writes past the cap, checkpoints after each refusal, and takes writes again once acknowledged', async () => {
    const log = capturingLogger();
    const outbox = SqliteOutbox.open({
      path: ':memory:',
      durability: 'process',
      maxFileBytes: cap,
      logger: log.logger,
    });
    let version = 0;
    const fillUntilRefused = async (): Promise<number[]> => {
      const accepted: number[] = [];
      for (let n = 0; n < 2_000; n++) {
        const v = ++version;
        const refusal = await outbox.append(value(`k${v}`, v, kilobyte(v))).then(
          () => undefined,
          (error: unknown) => error,
        );
        if (refusal !== undefined) {
          expect(refusal).toBeInstanceOf(OutboxError);
          expect((refusal as Error).message).toMatch(/outbox\.maxFileBytes reached/);
          return accepted;
        }
        accepted.push(v);
      }
      throw new Error('the capped outbox never refused a write');
    };
    for (let round = 1; round <= 2; round++) {
      const accepted = await fillUntilRefused();
      await nextTurn();
      expect(outbox.checkpoints).toBe(round);
      outbox.acknowledge(accepted.map((v) => ({ key: `k${v}`, version: v })));
      expect(outbox.pending()).toEqual([]);
    }
    await outbox.append(value('after', 10_000, kilobyte(0)));
    expect(outbox.failure).toBeUndefined();
    expect(log.at('warn')).toEqual([]);
    outbox.close();
  });

  it('a small write does not checkpoint the log', async () => {
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({ path, durability: 'process', maxFileBytes: cap, environment: env });
    await outbox.append(value('a', 1));
    for (let turn = 0; turn < 5; turn++) await nextTurn();
    expect(outbox.commits).toBe(1);
    expect(env.syncs).toBe(0);
    expect(outbox.checkpoints).toBe(0);
    outbox.close();
  });

  it('stays refusing while the file is full and nothing is acknowledged: the background probe finds no room', async () => {
    const log = capturingLogger();
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({
      path,
      durability: 'process',
      maxFileBytes: cap,
      logger: log.logger,
      environment: env,
    });
    const { accepted, error } = await fill(outbox);
    // Several ticks, each measuring the disk and probing.
    const measured = env.measurements;
    for (let i = 0; i < 3; i++) {
      env.tick();
      await turns(2);
    }
    expect(env.measurements).toBeGreaterThan(measured + 2);
    expect(outbox.failure).toBe(error);
    expect(log.at('info')).toEqual([]);
    expect(outbox.pending()).toHaveLength(accepted);
    outbox.close();
  });

  it('accepts writes again once the backlog is acknowledged, found by the background probe', async () => {
    const log = capturingLogger();
    const outbox = SqliteOutbox.open({
      path,
      durability: 'process',
      maxFileBytes: cap,
      maintenanceIntervalMs: 10,
      logger: log.logger,
    });
    const { accepted } = await fill(outbox);
    expect(outbox.failure).toBeInstanceOf(OutboxError);
    outbox.acknowledge(Array.from({ length: accepted }, (_, i) => ({ key: `k${i}`, version: i + 1 })));
    await vi.waitFor(() => expect(outbox.failure).toBeUndefined(), { timeout: 5_000, interval: 5 });
    expect(log.at('info').map((l) => l.msg)).toContain('the outbox accepts writes again');
    await outbox.append(value('after', 10_000, kilobyte(0)));
    expect(outbox.pending().map((p) => p.key)).toEqual(['after']);
    outbox.close();
  });
});
