import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger } from '../../../helpers/cache.js';
import { pendingItem as item, turns, pendingValue as value } from '../../../helpers/outbox.js';
import { TestEnvironment } from '../../../helpers/outbox-environment.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-background-'));
  path = join(dir, 'outbox.db');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Whether something is still scheduled for the next turn of the event loop (work that never ends keeps one). */
const keepsScheduling = () => process.getActiveResourcesInfo().includes('Immediate');

/** A value larger than a 256 KiB outbox can ever hold: its commit fails with SQLITE_FULL. */
const tooBig = () => JSON.stringify('x'.repeat(400_000));
const cap = 256 * 1024;

describe('SqliteOutbox: acknowledgements that can no longer be written', () => {
  it('acknowledging after close leaves nothing scheduled and changes nothing on disk', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 60_000 });
    await Promise.all([outbox.append(value('a', 1)), outbox.append(item('log', 'i1', 2))]);
    await outbox.close();
    outbox.acknowledge([
      { key: 'a', version: 1 },
      { key: 'log', version: 2, items: [{ id: 'i1', version: 2, json: '"i1"' }] },
    ]);
    await turns();
    expect(keepsScheduling()).toBe(false);
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending().map((p) => p.key)).toEqual(['a']);
    expect(reopened.pendingItems().map((p) => p.item.id)).toEqual(['i1']);
    await reopened.close();
  });

  it('acknowledging once the file is lost leaves nothing scheduled', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 60_000 });
    await outbox.append(value('a', 1));
    unlinkSync(`${path}-wal`);
    await expect(outbox.append(value('b', 2))).rejects.toThrow(/deleted or replaced/);
    expect(outbox.lost).toBe(true);
    outbox.acknowledge([{ key: 'a', version: 1 }]);
    await turns();
    expect(keepsScheduling()).toBe(false);
    await outbox.close();
  });

  it('acknowledgements waiting to be written when the file is found lost are dropped, values and items', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 60_000 });
    await Promise.all([
      outbox.append({ ...value('a', 1), unanchored: true }),
      outbox.append(item('log', 'i1', 2)),
    ]);
    unlinkSync(`${path}-wal`);
    outbox.acknowledge([
      { key: 'a', version: 1 },
      { key: 'log', version: 2, items: [{ id: 'i1', version: 2, json: '"i1"' }] },
    ]);
    // Before the acknowledgements are written, the anchoring write finds the log gone.
    expect(() => outbox.anchor([{ key: 'a', from: 1, to: 3 }], 3)).toThrow(OutboxError);
    expect(outbox.lost).toBe(true);
    await turns();
    expect(keepsScheduling()).toBe(false);
    await outbox.close();
  });

  it('deleting acknowledged rows notices a deleted log: the outbox is lost, and the error names the path', async () => {
    const log = capturingLogger();
    const outbox = SqliteOutbox.open({
      path,
      durability: 'process',
      maintenanceIntervalMs: 60_000,
      logger: log.logger,
    });
    await outbox.append(value('a', 1));
    unlinkSync(`${path}-wal`);
    outbox.acknowledge([{ key: 'a', version: 1 }]);
    expect(outbox.lost).toBe(false);
    await turns();
    expect(outbox.lost).toBe(true);
    expect(outbox.failure?.message).toMatch(/deleted or replaced/);
    expect(log.at('error')).toEqual([
      expect.objectContaining({
        msg: 'the outbox file was deleted or replaced; refusing writes',
        path,
        err: expect.objectContaining({ message: expect.stringMatching(/deleted or replaced/) }),
      }),
    ]);
    await expect(outbox.append(value('b', 2))).rejects.toThrow(/deleted or replaced/);
    await outbox.close();
  });
});

describe('SqliteOutbox: a checkpoint requested by a refused write', () => {
  it('closing before it runs: close resolves within a turn or two, with no maintenance warning', async () => {
    const log = capturingLogger();
    const outbox = SqliteOutbox.open({
      path,
      durability: 'fsync',
      maxFileBytes: cap,
      maintenanceIntervalMs: 60_000,
      logger: log.logger,
    });
    await outbox.append(value('a', 1));
    await expect(outbox.append(value('big', 2, tooBig()))).rejects.toThrow(/could not record the write/);
    let closed = false;
    void outbox.close().then(() => {
      closed = true;
    });
    await turns();
    expect(closed).toBe(true);
    expect(log.at('warn')).toEqual([]);
    const reopened = SqliteOutbox.open({ path, durability: 'fsync', maxFileBytes: cap });
    expect(reopened.pending().map((p) => p.key)).toEqual(['a']);
    await reopened.close();
  });

  it('the file found lost before it runs: no checkpoint is run on the lost file', async () => {
    const log = capturingLogger();
    const outbox = SqliteOutbox.open({
      path,
      durability: 'fsync',
      maxFileBytes: cap,
      maintenanceIntervalMs: 60_000,
      logger: log.logger,
    });
    await outbox.append({ ...value('a', 1), unanchored: true });
    await expect(outbox.append(value('big', 2, tooBig()))).rejects.toThrow(/could not record the write/);
    const checkpoints = outbox.checkpoints;
    unlinkSync(path);
    expect(() => outbox.anchor([{ key: 'a', from: 1, to: 3 }], 3)).toThrow(/deleted or replaced/);
    await turns();
    expect(outbox.checkpoints).toBe(checkpoints);
    expect(log.at('warn')).toEqual([]);
    await outbox.close();
  });
});

describe('SqliteOutbox in memory: background maintenance', () => {
  it('runs with no files to watch, and the outbox keeps taking writes', async () => {
    const log = capturingLogger();
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({
      path: ':memory:',
      durability: 'process',
      logger: log.logger,
      environment: env,
    });
    await outbox.append(value('a', 1));
    for (let i = 0; i < 3; i++) env.tick();
    expect(env.ticks).toBe(3);
    expect(outbox.lost).toBe(false);
    expect(outbox.failure).toBeUndefined();
    await outbox.append(value('b', 2));
    expect(outbox.pending().map((p) => p.key)).toEqual(['a', 'b']);
    expect(log.at('error')).toEqual([]);
    await outbox.close();
  });
});
