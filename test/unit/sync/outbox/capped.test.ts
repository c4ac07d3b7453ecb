import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { walLimits } from '../../../../src/sync/outbox/wal-limits.js';
import { capturingLogger } from '../../../helpers/cache.js';
import {
  pendingItem as item,
  rowsAfterCrash,
  turns,
  pendingValue as value,
} from '../../../helpers/outbox.js';
import { TestEnvironment } from '../../../helpers/outbox-environment.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-budget-'));
  path = join(dir, 'outbox.db');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * About 250 KiB, chosen so that the log's budget (what the cap leaves beside 31 main-file pages) is
 * two 32-byte log headers and 31 frames of 4 KiB pages: a log plus a row's worst case can then fill
 * it to the byte.
 */
const cap = 31 * (2 * 4096 + 24) + 64;
const FRAME_HEADER_BYTES = 24;
const WAL_HEADER_BYTES = 32;

/** A JSON string of exactly `bytes` bytes. */
const jsonOf = (bytes: number) => `"${'x'.repeat(bytes - 2)}"`;

const sizeOf = (p: string) => statSync(p, { throwIfNoEntry: false })?.size ?? 0;
const _nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A capped outbox with no background maintenance during the test. */
const capped = (durability: 'process' | 'fsync' = 'process') =>
  SqliteOutbox.open({ path, durability, maxFileBytes: cap, maintenanceIntervalMs: 60_000 });

const rowsOnDisk = () => rowsAfterCrash(path);

/**
 * The pre-commit check assumes each row may write its leaf, a split into two plus a parent, and one
 * page per (page size - 64) bytes of key, id and JSON, plus one header page: never more pages than
 * the main file may hold. Given the log's size now, returns the row byte counts of the largest
 * single row that still fits in what is left of the log's budget, and of the smallest that does not.
 */
function rowBytesAround(walBytes: number): { fits: number; overruns: number } {
  const pageSize = readFileSync(path).readUInt16BE(16);
  const { walBudgetBytes, maxPageCount } = walLimits(cap, pageSize, 'process');
  const room = (walBudgetBytes as number) - walBytes - WAL_HEADER_BYTES;
  const pagesThatFit = Math.floor(room / (pageSize + FRAME_HEADER_BYTES));
  // One header page and three tree pages, then the row's own pages.
  const rowPages = pagesThatFit - 4;
  expect(rowPages).toBeGreaterThan(1);
  expect(pagesThatFit + 1).toBeLessThanOrEqual(maxPageCount as number);
  const perPage = pageSize - 64;
  return { fits: rowPages * perPage, overruns: rowPages * perPage + 1 };
}

describe('a capped outbox empties its log before a commit that might overrun the log’s budget', () => {
  it('small writes one after another are committed without a checkpoint', async () => {
    const outbox = capped();
    for (let v = 1; v <= 5; v++) {
      await outbox.append(value(`k${v}`, v));
      expect(outbox.checkpoints).toBe(0);
    }
    outbox.close();
  });

  it('a value that fills what is left of the budget to the byte is committed without a checkpoint', async () => {
    const outbox = capped();
    await outbox.append(value('a', 1));
    const { fits } = rowBytesAround(sizeOf(`${path}-wal`));
    await outbox.append(value('k', 2, jsonOf(fits - 1)));
    expect(outbox.checkpoints).toBe(0);
    expect(outbox.pending().map((p) => p.key)).toEqual(['a', 'k']);
    outbox.close();
  });

  it('a value one byte larger than that: the log is checkpointed (and emptied) first', async () => {
    const outbox = capped();
    await outbox.append(value('a', 1));
    const { overruns } = rowBytesAround(sizeOf(`${path}-wal`));
    await outbox.append(value('k', 2, jsonOf(overruns - 1)));
    expect(outbox.checkpoints).toBe(1);
    expect(sizeOf(path) + sizeOf(`${path}-wal`)).toBeLessThanOrEqual(cap);
    expect(outbox.pending().map((p) => p.key)).toEqual(['a', 'k']);
    outbox.close();
  });

  it('an item: its key, id and JSON all count', async () => {
    const id = 'item-'.repeat(20);
    const fitting = capped();
    await fitting.append(value('a', 1));
    const around = rowBytesAround(sizeOf(`${path}-wal`));
    await fitting.append(item('k', id, 2, jsonOf(around.fits - 1 - id.length)));
    expect(fitting.checkpoints).toBe(0);
    fitting.close();
    rmSync(path);
    rmSync(`${path}-wal`, { force: true });

    const overrunning = capped();
    await overrunning.append(value('a', 1));
    const { overruns } = rowBytesAround(sizeOf(`${path}-wal`));
    await overrunning.append(item('k', id, 2, jsonOf(overruns - 1 - id.length)));
    expect(overrunning.checkpoints).toBe(1);
    expect(overrunning.pendingItems().map((p) => p.item.id)).toEqual([id]);
    overrunning.close();
  });

  it('a delete (no JSON) is recorded like any write', async () => {
    const outbox = capped();
    await outbox.append(value('a', 1));
    await outbox.append(value('a', 2, null));
    expect(outbox.failure).toBeUndefined();
    expect(outbox.pending()).toEqual([expect.objectContaining({ key: 'a', version: 2, json: null })]);
    outbox.close();
  });
});

describe('a capped outbox empties its log before deleting many acknowledged rows', () => {
  it('acknowledged values: the log is checkpointed first, and the rows are gone', async () => {
    const outbox = capped();
    await Promise.all(Array.from({ length: 30 }, (_, i) => outbox.append(value(`key-${i}`, i + 1))));
    expect(outbox.checkpoints).toBe(0);
    outbox.acknowledge(Array.from({ length: 30 }, (_, i) => ({ key: `key-${i}`, version: i + 1 })));
    await turns();
    expect(outbox.checkpoints).toBe(1);
    expect(rowsOnDisk()).toEqual({ values: 0, items: 0 });
    outbox.close();
  });

  it('acknowledged items: the log is checkpointed first, and the rows are gone', async () => {
    const outbox = capped();
    await Promise.all(Array.from({ length: 30 }, (_, i) => outbox.append(item('log', `item-${i}`, i + 1))));
    expect(outbox.checkpoints).toBe(0);
    outbox.acknowledge([
      {
        key: 'log',
        version: 30,
        items: Array.from({ length: 30 }, (_, i) => ({ id: `item-${i}`, version: i + 1, json: '""' })),
      },
    ]);
    await turns();
    expect(outbox.checkpoints).toBe(1);
    expect(rowsOnDisk()).toEqual({ values: 0, items: 0 });
    expect(outbox.highestVersion()).toBe(30);
    outbox.close();
  });
});

describe('a capped outbox whose deletion of acknowledged rows is interrupted by a checkpoint', () => {
  it('goes on deleting them, a chunk per turn, once the checkpoint has run', async () => {
    const outbox = capped('fsync');
    await Promise.all(Array.from({ length: 100 }, (_, i) => outbox.append(value(`key-${i}`, i + 1))));
    outbox.acknowledge(Array.from({ length: 100 }, (_, i) => ({ key: `key-${i}`, version: i + 1 })));
    // Refused while the rows are being deleted: the refusal asks for a checkpoint of the log.
    await expect(outbox.append(value('big', 101, jsonOf(400_000)))).rejects.toBeInstanceOf(OutboxError);
    await turns(10);
    expect(rowsOnDisk()).toEqual({ values: 0, items: 0 });
    expect(outbox.highestVersion()).toBe(100);
    outbox.close();
  });
});

describe('a capped outbox that refused a write for room', () => {
  it('keeps refusing writes while no page is free: its background probe does not report it writable', async () => {
    const log = capturingLogger();
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({
      path,
      durability: 'process',
      maxFileBytes: cap,
      logger: log.logger,
      environment: env,
    });
    let accepted = 0;
    for (; accepted < 1_000; accepted++) {
      const refused = await outbox.append(value(`key-${accepted}`, accepted + 1, jsonOf(1_000))).then(
        () => false,
        () => true,
      );
      if (refused) break;
    }
    expect(accepted).toBeGreaterThan(10);
    expect(outbox.failure).toBeInstanceOf(OutboxError);
    const measured = env.measurements;
    for (let i = 0; i < 3; i++) {
      env.tick();
      await turns(2);
    }
    expect(env.measurements).toBeGreaterThan(measured + 2);
    expect(outbox.failure).toBeInstanceOf(OutboxError);
    expect(log.at('info').map((l) => l.msg)).not.toContain('the outbox accepts writes again');
    outbox.close();
  });

  it('a single write too large for the cap leaves room for others: the background probe finds a page free and says so', async () => {
    const log = capturingLogger();
    const outbox = SqliteOutbox.open({
      path,
      durability: 'process',
      maxFileBytes: cap,
      maintenanceIntervalMs: 5,
      logger: log.logger,
    });
    await outbox.append(value('a', 1));
    await expect(outbox.append(value('big', 2, jsonOf(400_000)))).rejects.toThrow(/maxFileBytes reached/);
    expect(outbox.failure).toBeInstanceOf(OutboxError);
    await vi.waitFor(() => expect(outbox.failure).toBeUndefined(), { timeout: 5_000, interval: 5 });
    expect(log.at('info').map((l) => l.msg)).toContain('the outbox accepts writes again');
    await outbox.append(value('b', 3));
    expect(outbox.pending().map((p) => p.key)).toEqual(['a', 'b']);
    outbox.close();
  });
});

describe('a capped outbox checkpoints its log in the background once it grows past half its budget', () => {
  it('and not again while later commits reuse the checkpointed log without growing it', async () => {
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({ path, durability: 'process', maxFileBytes: cap, environment: env });
    const threshold = walLimits(cap, 4096, 'process').checkpointAtBytes;
    let version = 0;
    while (sizeOf(`${path}-wal`) < threshold) {
      version++;
      await outbox.append(value(`key-${version}`, version, jsonOf(1_000)));
    }
    expect(env.syncs).toBe(1);
    await turns(2);
    expect(outbox.checkpoints).toBe(1);
    const commits = outbox.commits;
    for (let i = 0; i < 5; i++) {
      version++;
      await outbox.append(value(`small-${i}`, version));
      await turns(2);
    }
    expect(outbox.commits).toBe(commits + 5);
    expect(env.syncs).toBe(1);
    expect(outbox.checkpoints).toBe(1);
    expect(outbox.pending()).toHaveLength(version);
    outbox.close();
  });
});
