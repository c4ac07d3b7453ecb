import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { pendingItem as item, pendingValue as write } from '../../../helpers/outbox.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-ack-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The outbox's files as a crash would leave them now (the open handle is not closed, so nothing more is written). */
function crashCopy(path: string): string {
  const copy = join(dir, 'after-crash.db');
  copyFileSync(path, copy);
  if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`);
  return copy;
}

/** Lets the outbox run what it scheduled for the next turns of the event loop. */
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('SqliteOutbox: acknowledged rows leave the file', () => {
  it('deletes acknowledged values and items by themselves, so a crash right after does not replay them', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([
      outbox.append(write('a', 1)),
      outbox.append(write('b', 2)),
      outbox.append(write('c', 3)),
      outbox.append(item('log', 'i1', 5)),
      outbox.append(item('log', 'i2', 9)),
      outbox.append(item('log', 'i3', 4)),
    ]);

    // Acknowledged writes survive a crash until the store has them.
    const beforeAck = SqliteOutbox.open({ path: crashCopy(path), durability: 'process' });
    expect(beforeAck.pending().map((p) => p.key)).toEqual(['a', 'b', 'c']);
    expect(beforeAck.pendingItems().map((p) => p.item.id)).toEqual(['i3', 'i1', 'i2']);
    beforeAck.close();
    rmSync(join(dir, 'after-crash.db'));
    rmSync(join(dir, 'after-crash.db-wal'), { force: true });

    outbox.acknowledge([
      { key: 'a', version: 1 },
      { key: 'c', version: 3 },
      {
        key: 'log',
        version: 9,
        items: [
          { id: 'i2', version: 9, json: '"i2"' },
          { id: 'i1', version: 5, json: '"i1"' },
        ],
      },
    ]);
    await turns();

    const afterAck = SqliteOutbox.open({ path: crashCopy(path), durability: 'process' });
    expect(afterAck.pending().map((p) => [p.key, p.version])).toEqual([['b', 2]]);
    expect(afterAck.pendingItems().map((p) => [p.item.id, p.item.version])).toEqual([['i3', 4]]);
    // The acknowledged item with the highest version still holds the clock up after its row is gone.
    expect(afterAck.highestVersion()).toBe(9);
    afterAck.close();
    outbox.close();
  });

  it('no longer lists acknowledged items, even read in the same turn as the acknowledgement', async () => {
    const outbox = SqliteOutbox.open({ path: join(dir, 'outbox.db'), durability: 'process' });
    await Promise.all([outbox.append(item('log', 'i1', 1)), outbox.append(item('log', 'i2', 2))]);
    outbox.acknowledge([{ key: 'log', version: 1, items: [{ id: 'i1', version: 1, json: '"i1"' }] }]);
    expect(outbox.pendingItems().map((p) => p.item.id)).toEqual(['i2']);
    outbox.close();
  });

  it('keeps the high-water mark of acknowledged items across reopen once nothing is pending', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'fsync' });
    await Promise.all([outbox.append(item('log', 'x', 30)), outbox.append(item('log', 'y', 12))]);
    outbox.acknowledge([
      {
        key: 'log',
        version: 30,
        items: [
          { id: 'x', version: 30, json: '"x"' },
          { id: 'y', version: 12, json: '"y"' },
        ],
      },
    ]);
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'fsync' });
    expect(reopened.pendingItems()).toEqual([]);
    expect(reopened.highestVersion()).toBe(30);
    reopened.close();
  });

  it('a late acknowledgement of an older version does not keep the newer acknowledged row', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append(write('a', 1));
    await outbox.append(write('a', 2));
    outbox.acknowledge([{ key: 'a', version: 2 }]);
    outbox.acknowledge([{ key: 'a', version: 1 }]); // an earlier flush answered last
    expect(outbox.pending()).toEqual([]);
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending()).toEqual([]);
    expect(reopened.highestVersion()).toBe(2);
    reopened.close();
  });

  it('reading what to replay writes nothing to the file', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([outbox.append(write('a', 1)), outbox.append(item('log', 'i1', 2))]);
    outbox.close();

    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending().map((p) => p.key)).toEqual(['a']);
    expect(reopened.pendingItems().map((p) => p.item.id)).toEqual(['i1']);
    expect(reopened.highestVersion()).toBe(2);
    expect(reopened.reservedVersions()).toEqual([]);
    await turns();
    expect(statSync(`${path}-wal`).size).toBe(0);
    reopened.close();
  });
});

describe('SqliteOutbox: versions reserved by the previous release', () => {
  it('lists them across reopen while rows may need them, and drops them once none is pending', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append({ ...write('a', 5), unanchored: true });
    outbox.close();
    // As the previous release recorded them when its clock was anchored.
    const raw = new Database(path);
    raw.exec('INSERT INTO reserved_versions (old_version, new_version) VALUES (6, 21), (5, 20)');
    raw.close();

    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.reservedVersions()).toEqual([
      [5, 20],
      [6, 21],
    ]);
    reopened.acknowledge([{ key: 'a', version: 5 }]);
    expect(reopened.pending()).toEqual([]);
    expect(reopened.reservedVersions()).toEqual([]);
    reopened.close();

    const again = SqliteOutbox.open({ path, durability: 'process' });
    expect(again.reservedVersions()).toEqual([]);
    again.close();
    const check = new Database(path, { readonly: true });
    expect(check.prepare('SELECT count(*) FROM reserved_versions').pluck().get()).toBe(0);
    check.close();
  });
});
