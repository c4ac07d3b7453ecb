import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutboxError, SqliteStorage } from '../../../../src/index.js';
import type { PendingItem, PendingWrite } from '../../../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger } from '../../../helpers/cache.js';
import { turns } from '../../../helpers/outbox.js';
import { TestEnvironment } from '../../../helpers/outbox-environment.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-commit-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const write = (key: string, version: number, extra: Partial<PendingWrite> = {}): PendingWrite => ({
  key,
  version,
  json: JSON.stringify(version),
  expiresAt: null,
  queuedAt: version,
  ...extra,
});

const item = (key: string, id: string, version: number, extra: Partial<PendingItem> = {}): PendingItem => ({
  key,
  item: { id, version, json: JSON.stringify(id) },
  expiresAt: null,
  queuedAt: version,
  ...extra,
});

const deleteFiles = (path: string) => {
  unlinkSync(path);
  unlinkSync(`${path}-wal`);
};

describe('SqliteOutbox: what a reopened outbox replays', () => {
  it('replays the unanchored mark of values and items, and only where it was set', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([
      outbox.append(write('early', 1, { unanchored: true })),
      outbox.append(write('later', 2)),
      outbox.append(item('log', 'i1', 3, { unanchored: true })),
      outbox.append(item('log', 'i2', 4)),
    ]);
    outbox.close();

    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending()).toEqual([
      { key: 'early', version: 1, json: '1', expiresAt: null, queuedAt: 1, unanchored: true },
      { key: 'later', version: 2, json: '2', expiresAt: null, queuedAt: 2 },
    ]);
    expect(reopened.pendingItems()).toEqual([
      {
        key: 'log',
        item: { id: 'i1', version: 3, json: '"i1"' },
        expiresAt: null,
        queuedAt: 3,
        unanchored: true,
      },
      { key: 'log', item: { id: 'i2', version: 4, json: '"i2"' }, expiresAt: null, queuedAt: 4 },
    ]);
    reopened.close();
  });

  it('replays re-versioned values and items with their new versions and floors, anchored', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([
      outbox.append(write('a', 5, { unanchored: true })),
      outbox.append(write('b', 6, { unanchored: true })),
      outbox.append(item('log', 'i1', 7, { unanchored: true })),
    ]);
    outbox.anchor(
      [
        { key: 'a', from: 5, to: 20, logFloor: 15 },
        { key: 'b', from: 6, to: 21 },
        { key: 'log', from: 7, to: 22, itemId: 'i1' },
      ],
      22,
    );
    outbox.close();

    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending()).toEqual([
      { key: 'a', version: 20, json: '5', expiresAt: null, queuedAt: 5, logFloor: 15 },
      { key: 'b', version: 21, json: '6', expiresAt: null, queuedAt: 6 },
    ]);
    expect(reopened.pendingItems()).toEqual([
      { key: 'log', item: { id: 'i1', version: 22, json: '"i1"' }, expiresAt: null, queuedAt: 7 },
    ]);
    expect(reopened.highestVersion()).toBe(22);
    reopened.close();
  });

  it('moves rows with damaged JSON to the dead letters with the reason, and replays the rest', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([
      outbox.append(write('bad', 1)),
      outbox.append(write('good', 2)),
      outbox.append(item('log', 'broken', 3)),
      outbox.append(item('log', 'fine', 4)),
    ]);
    outbox.close();
    const raw = new Database(path);
    raw.prepare("UPDATE pending SET json = '{oops' WHERE key = 'bad'").run();
    raw.prepare("UPDATE pending_items SET json = '[1,' WHERE id = 'broken'").run();
    raw.close();

    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    const letters = reopened.quarantineDamaged();
    const reason = expect.stringMatching(/JSON was damaged in the outbox.*not sent to the store/);
    expect(letters).toEqual([
      { key: 'bad', version: 1, json: '{oops', expiresAt: null, error: reason, failedAt: expect.any(Number) },
      {
        key: 'log',
        version: 3,
        json: '[1,',
        expiresAt: null,
        itemId: 'broken',
        error: reason,
        failedAt: expect.any(Number),
      },
    ]);
    expect(reopened.pending().map((p) => p.key)).toEqual(['good']);
    expect(reopened.pendingItems().map((p) => p.item.id)).toEqual(['fine']);
    reopened.close();

    const again = SqliteOutbox.open({ path, durability: 'process' });
    expect(again.deadLetters()).toEqual(letters);
    expect(again.quarantineDamaged()).toEqual([]);
    again.close();
  });
});

describe('SqliteOutbox: a damaged table found while replaying or writing', () => {
  /** Garbles the root page of `table` (a small table: its only page), keeping the schema page intact. */
  function damageTable(path: string, table: string): void {
    const raw = new Database(path, { readonly: true });
    const root = raw
      .prepare('SELECT rootpage FROM sqlite_schema WHERE name = ?')
      .pluck()
      .get(table) as number;
    raw.close();
    const bytes = readFileSync(path);
    const pageSize = bytes.readUInt16BE(16);
    bytes.fill(0xab, pageSize * (root - 1), pageSize * root);
    writeFileSync(path, bytes);
  }

  async function outboxWithRows(): Promise<string> {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([
      outbox.append(write('a', 1, { unanchored: true })),
      outbox.append(item('log', 'i1', 2)),
    ]);
    outbox.close();
    // A reservation as the previous release recorded it for the unanchored row.
    const raw = new Database(path);
    raw.prepare('INSERT INTO reserved_versions (old_version, new_version) VALUES (1, 10)').run();
    raw.close();
    return path;
  }

  const damaged = (path: string) => new RegExp(`${path}.*damaged.*move it aside`);

  it('pending values: reading them, the high-water mark or damaged rows names the path and what to do', async () => {
    const path = await outboxWithRows();
    damageTable(path, 'pending');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    expect(() => outbox.pending()).toThrow(OutboxError);
    expect(() => outbox.pending()).toThrow(damaged(path));
    expect(() => outbox.highestVersion()).toThrow(damaged(path));
    expect(() => outbox.quarantineDamaged()).toThrow(damaged(path));
    outbox.close();
  });

  it('pending items: reading them names the path and what to do', async () => {
    const path = await outboxWithRows();
    damageTable(path, 'pending_items');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    expect(() => outbox.pendingItems()).toThrow(OutboxError);
    expect(() => outbox.pendingItems()).toThrow(damaged(path));
    outbox.close();
  });

  it('reserved versions: reading them names the path and what to do', async () => {
    const path = await outboxWithRows();
    damageTable(path, 'reserved_versions');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    expect(() => outbox.reservedVersions()).toThrow(OutboxError);
    expect(() => outbox.reservedVersions()).toThrow(damaged(path));
    outbox.close();
  });

  it('pending values, written to: the append is refused naming the path, and no checkpoint is run over the file', async () => {
    const path = await outboxWithRows();
    damageTable(path, 'pending');
    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({ path, durability: 'process', environment: env });
    const appended = outbox.append(write('b', 5));
    await expect(appended).rejects.toBeInstanceOf(OutboxError);
    await expect(appended).rejects.toThrow(new RegExp(`the outbox at ${path} could not record the write`));
    expect(outbox.failure).toBeInstanceOf(OutboxError);
    // Only a refusal for room asks for a checkpoint (it may free log space); damage does not.
    await turns(2);
    expect(env.syncs).toBe(0);
    expect(outbox.checkpoints).toBe(0);
    await outbox.close();
  });
});

describe('SqliteOutbox: refusing to open', () => {
  it("refuses the store's own file as not an outbox even while the store holds it open", async () => {
    const storePath = join(dir, 'store.db');
    const store = new SqliteStorage({ path: storePath });
    await store.apply([{ key: 'k', version: 1, json: '1', expiresAt: null }]);
    expect(() => SqliteOutbox.open({ path: storePath, durability: 'process' })).toThrow(
      /hybrid-cache store file, not an outbox/,
    );
    expect((await store.getMany(['k'])).get('k')?.json).toBe('1');
    await store.close();
  });
});

describe('SqliteOutbox: after close', () => {
  it('refuses to anchor with an OutboxError saying it is closed, with or without changes', async () => {
    const outbox = SqliteOutbox.open({ path: join(dir, 'outbox.db'), durability: 'process' });
    await outbox.append(write('a', 1, { unanchored: true }));
    outbox.close();
    expect(() => outbox.anchor([{ key: 'a', from: 1, to: 2 }], 2)).toThrow(OutboxError);
    const closed = `the outbox at ${join(dir, 'outbox.db')} is closed`;
    expect(() => outbox.anchor([{ key: 'a', from: 1, to: 2 }], 2)).toThrow(closed);
    expect(() => outbox.anchor([], 1)).toThrow(closed);
  });
});

describe('SqliteOutbox: its files deleted underneath it', () => {
  it('with durability process, a deleted log alone makes the next append reject, and the outbox reports itself lost', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append(write('a', 1));
    expect(outbox.lost).toBe(false);
    expect(outbox.failure).toBeUndefined();

    unlinkSync(`${path}-wal`);
    const appended = outbox.append(write('b', 2));
    await expect(appended).rejects.toBeInstanceOf(OutboxError);
    await expect(appended).rejects.toThrow(/deleted or replaced/);
    expect(outbox.lost).toBe(true);
    expect(outbox.failure?.message).toMatch(/deleted or replaced/);

    // Nothing in a lost file will be replayed: anchoring is skipped, not refused, and the outbox stays lost.
    expect(() => outbox.anchor([{ key: 'a', from: 1, to: 3 }], 3)).not.toThrow();
    expect(outbox.lost).toBe(true);
    await expect(outbox.append(write('c', 4))).rejects.toThrow(/deleted or replaced/);
    outbox.close();
  });

  it.each([
    ['anchor', (o: SqliteOutbox) => o.anchor([{ key: 'a', from: 1, to: 2 }], 2)],
    ['anchor with nothing to re-version', (o: SqliteOutbox) => o.anchor([], 1)],
    [
      'deadLetter',
      (o: SqliteOutbox) =>
        o.deadLetter({ key: 'a', version: 1, json: '1', expiresAt: null, error: 'rejected', failedAt: 1 }),
    ],
  ])('%s throws once it finds the files deleted, and the outbox is lost', async (_, call) => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append(write('a', 1, { unanchored: true }));
    deleteFiles(path);
    let thrown: unknown;
    try {
      call(outbox);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(OutboxError);
    expect((thrown as Error).message).toMatch(new RegExp(`the outbox at ${path} .*deleted or replaced`));
    expect(outbox.lost).toBe(true);
    expect(outbox.failure).toBe(thrown);
    outbox.close();
  });

  it('with durability fsync, a log deleted is noticed in the background, and dead-lettering then throws', async () => {
    const path = join(dir, 'outbox.db');
    const { logger, at } = capturingLogger();
    const outbox = SqliteOutbox.open({ path, durability: 'fsync', maintenanceIntervalMs: 10, logger });
    await outbox.append(write('a', 1));
    unlinkSync(`${path}-wal`);
    await vi.waitFor(() => expect(outbox.lost).toBe(true), { timeout: 5_000, interval: 5 });
    expect(at('error').map((l) => l.msg)).toEqual([
      'the outbox file was deleted or replaced; refusing writes',
    ]);
    expect(() =>
      outbox.deadLetter({ key: 'a', version: 1, json: '1', expiresAt: null, error: 'rejected', failedAt: 1 }),
    ).toThrow(/deleted or replaced/);
    outbox.close();
  });
});

describe('SqliteOutbox: background maintenance', () => {
  it('checkpoints the log in the background after writes, at the interval asked for, logging nothing', async () => {
    const path = join(dir, 'outbox.db');
    const { logger, lines } = capturingLogger();
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 10, logger });
    await outbox.append(write('a', 1));
    expect(outbox.checkpoints).toBe(0); // never inside a commit
    await vi.waitFor(() => expect(outbox.checkpoints).toBeGreaterThan(0), { timeout: 5_000, interval: 5 });
    expect(outbox.pending().map((p) => p.key)).toEqual(['a']);
    expect(lines).toEqual([]);
    outbox.close();
  });

  it('does not keep the process alive while open', () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const outbox = SqliteOutbox.open({ path: join(dir, 'outbox.db'), durability: 'process' });
    expect(timers()).toBe(before);
    outbox.close();
  });

  it('leaves an idle reopened outbox alone, even once its rows were read for replay', async () => {
    const path = join(dir, 'outbox.db');
    const first = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([first.append(write('a', 1)), first.append(item('log', 'i1', 2))]);
    first.close();

    const env = new TestEnvironment();
    const outbox = SqliteOutbox.open({ path, durability: 'process', environment: env });
    expect(outbox.pending()).toHaveLength(1);
    expect(outbox.pendingItems()).toHaveLength(1);
    expect(outbox.highestVersion()).toBe(2);
    const measured = env.measurements;
    for (let i = 0; i < 3; i++) env.tick();
    // The ticks ran (each measured the disk) and asked for no checkpoint.
    expect(env.measurements).toBe(measured + 3);
    expect(env.syncs).toBe(0);
    expect(outbox.checkpoints).toBe(0);
    outbox.close();
  });
});
