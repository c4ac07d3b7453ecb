import { mkdtempSync, readdirSync, readlinkSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { pendingItem as item, pendingValue as value } from '../../../helpers/outbox.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-letters-'));
  path = join(dir, 'outbox.db');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const open = () => SqliteOutbox.open({ path, durability: 'process' });

describe('dead letters of appended items', () => {
  it('take the item out of pending, keep its id, and survive a reopen', async () => {
    const outbox = open();
    await outbox.append(item('log', 'i1', 10));
    await outbox.append(item('log', 'i2', 11));
    outbox.deadLetter({
      key: 'log',
      version: 10,
      json: '"i1"',
      expiresAt: null,
      itemId: 'i1',
      error: 'no',
      failedAt: 5,
    });
    expect(outbox.pendingItems().map((p) => p.item.id)).toEqual(['i2']);
    outbox.close();
    const reopened = open();
    expect(reopened.pendingItems().map((p) => p.item.id)).toEqual(['i2']);
    expect(reopened.deadLetters()).toEqual([
      { key: 'log', version: 10, json: '"i1"', expiresAt: null, itemId: 'i1', error: 'no', failedAt: 5 },
    ]);
    reopened.close();
  });

  it('a dead-lettered item leaves the value write of its key pending, and vice versa', async () => {
    const outbox = open();
    await outbox.append(value('k', 10));
    await outbox.append(item('k', 'i1', 10));
    outbox.deadLetter({
      key: 'k',
      version: 10,
      json: '"i1"',
      expiresAt: null,
      itemId: 'i1',
      error: 'no',
      failedAt: 1,
    });
    expect(outbox.pending().map((p) => [p.key, p.version])).toEqual([['k', 10]]);
    expect(outbox.pendingItems()).toEqual([]);
    await outbox.append(item('k', 'i2', 12));
    outbox.deadLetter({ key: 'k', version: 10, json: '10', expiresAt: null, error: 'no', failedAt: 2 });
    expect(outbox.pending()).toEqual([]);
    expect(outbox.pendingItems().map((p) => p.item.id)).toEqual(['i2']);
    outbox.close();
  });

  it('requeued, go back to pending items (not to pending values) and leave the dead letters', async () => {
    const outbox = open();
    await outbox.append(item('log', 'i1', 10));
    outbox.deadLetter({
      key: 'log',
      version: 10,
      json: '"i1"',
      expiresAt: 7,
      itemId: 'i1',
      error: 'no',
      failedAt: 5,
    });
    outbox.deadLetter({ key: 'v', version: 3, json: '3', expiresAt: null, error: 'no', failedAt: 6 });
    const requeued = outbox.requeueDeadLetters();
    expect(requeued.map((l) => l.itemId)).toEqual(['i1', undefined]);
    expect(outbox.deadLetters()).toEqual([]);
    expect(outbox.pendingItems()).toEqual([
      {
        key: 'log',
        item: { id: 'i1', version: 10, json: '"i1"' },
        expiresAt: 7,
        queuedAt: expect.any(Number),
      },
    ]);
    expect(outbox.pending().map((p) => [p.key, p.version, p.json])).toEqual([['v', 3, '3']]);
    outbox.close();
    const reopened = open();
    expect(reopened.deadLetters()).toEqual([]);
    expect(reopened.pendingItems().map((p) => p.item.id)).toEqual(['i1']);
    reopened.close();
  });
});

describe('dead letters keep the version high-water mark', () => {
  it('the version of a dead-lettered write stays the highest seen after its row leaves', async () => {
    const outbox = open();
    await outbox.append(value('a', 100));
    outbox.deadLetter({ key: 'a', version: 100, json: '100', expiresAt: null, error: 'no', failedAt: 1 });
    expect(outbox.pending()).toEqual([]);
    expect(outbox.highestVersion()).toBe(100);
    await outbox.append(item('log', 'i1', 200));
    outbox.deadLetter({
      key: 'log',
      version: 200,
      json: '"i1"',
      expiresAt: null,
      itemId: 'i1',
      error: 'no',
      failedAt: 1,
    });
    outbox.close();
    const reopened = open();
    expect(reopened.highestVersion()).toBe(200);
    reopened.close();
  });
});

describe('requeueing dead letters', () => {
  it('leaves a letter whose JSON is damaged parked, and takes the intact ones and deletes', () => {
    const outbox = open();
    outbox.deadLetter({ key: 'bad', version: 1, json: '{"broken', expiresAt: null, error: 'x', failedAt: 1 });
    outbox.deadLetter({
      key: 'good',
      version: 2,
      json: '{"ok":true}',
      expiresAt: null,
      error: 'x',
      failedAt: 2,
    });
    outbox.deadLetter({ key: 'gone', version: 3, json: null, expiresAt: null, error: 'x', failedAt: 3 });
    expect(outbox.requeueDeadLetters().map((l) => l.key)).toEqual(['good', 'gone']);
    expect(outbox.deadLetters().map((l) => l.key)).toEqual(['bad']);
    expect(
      outbox
        .pending()
        .map((p) => [p.key, p.json])
        .sort(),
    ).toEqual([
      ['gone', null],
      ['good', '{"ok":true}'],
    ]);
    outbox.close();
  });

  it('takes only the keys asked for', () => {
    const outbox = open();
    outbox.deadLetter({ key: 'a', version: 1, json: '1', expiresAt: null, error: 'x', failedAt: 1 });
    outbox.deadLetter({ key: 'b', version: 2, json: '2', expiresAt: null, error: 'x', failedAt: 2 });
    expect(outbox.requeueDeadLetters(['b']).map((l) => l.key)).toEqual(['b']);
    expect(outbox.deadLetters().map((l) => l.key)).toEqual(['a']);
    outbox.close();
  });
});

describe('quarantining damaged rows', () => {
  it('moves values and items whose JSON is damaged to the dead letters, items with their id', async () => {
    const outbox = open();
    await outbox.append(value('ok', 1));
    await outbox.append(value('bad', 2, '{"broken'));
    await outbox.append(value('deleted', 3, null));
    await outbox.append(item('log', 'good-item', 4));
    await outbox.append(item('log', 'bad-item', 5, 'not json'));
    const letters = outbox.quarantineDamaged();
    const reason = 'its JSON was damaged in the outbox (not valid JSON); it was not sent to the store';
    expect(letters).toEqual([
      {
        key: 'bad',
        version: 2,
        json: '{"broken',
        expiresAt: null,
        error: reason,
        failedAt: expect.any(Number),
      },
      {
        key: 'log',
        version: 5,
        json: 'not json',
        expiresAt: null,
        itemId: 'bad-item',
        error: reason,
        failedAt: expect.any(Number),
      },
    ]);
    expect(outbox.deadLetters()).toEqual(letters);
    expect(outbox.pending().map((p) => p.key)).toEqual(['ok', 'deleted']);
    expect(outbox.pendingItems().map((p) => p.item.id)).toEqual(['good-item']);
    expect(outbox.quarantineDamaged()).toEqual([]);
    outbox.close();
  });
});

describe('dead letters on an outbox whose file was deleted', () => {
  const deleteFiles = () => {
    unlinkSync(path);
    unlinkSync(`${path}-wal`);
  };

  it('requeueing says the outbox was lost, before and after the loss was noticed', async () => {
    const outbox = open();
    outbox.deadLetter({ key: 'a', version: 1, json: '1', expiresAt: null, error: 'x', failedAt: 1 });
    deleteFiles();
    expect(() => outbox.requeueDeadLetters()).toThrow(/deleted or replaced/);
    expect(outbox.lost).toBe(true);
    expect(() => outbox.requeueDeadLetters()).toThrow(OutboxError);
    outbox.close();
  });

  it('dead-lettering says the outbox was lost', async () => {
    const outbox = open();
    await outbox.append(value('a', 1));
    deleteFiles();
    expect(() =>
      outbox.deadLetter({ key: 'a', version: 1, json: '1', expiresAt: null, error: 'x', failedAt: 1 }),
    ).toThrow(/deleted or replaced/);
    expect(() =>
      outbox.deadLetter({ key: 'a', version: 1, json: '1', expiresAt: null, error: 'x', failedAt: 1 }),
    ).toThrow(/deleted or replaced/);
    outbox.close();
  });
});

describe('a delete in the outbox', () => {
  it('drops the key’s older pending items, here as in the store; a value write keeps them', async () => {
    const outbox = open();
    await outbox.append(item('log', 'old', 1));
    await outbox.append(item('other', 'theirs', 2));
    await outbox.append(value('log', 3));
    expect(outbox.pendingItems().map((p) => p.item.id)).toEqual(['old', 'theirs']);
    await outbox.append(item('log', 'newer', 6));
    await outbox.append(value('log', 5, null));
    expect(outbox.pendingItems().map((p) => p.item.id)).toEqual(['theirs', 'newer']);
    outbox.close();
    const reopened = open();
    expect(reopened.pendingItems().map((p) => p.item.id)).toEqual(['theirs', 'newer']);
    reopened.close();
  });

  it('in a group with other writes drops the older items too', async () => {
    const outbox = open();
    await outbox.append(item('log', 'old', 1));
    await Promise.all([outbox.append(value('log', 5, null)), outbox.append(value('x', 6))]);
    expect(outbox.pendingItems()).toEqual([]);
    outbox.close();
  });
});

/** Descriptors this process holds on `p` (Linux). */
const descriptorsOn = (p: string): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === p;
    } catch {
      return false;
    }
  }).length;

describe('close', () => {
  it('leaves no descriptor open on the file or its log', async () => {
    const outbox = open();
    await outbox.append(value('a', 1));
    expect(descriptorsOn(path)).toBeGreaterThan(0);
    outbox.close();
    expect(descriptorsOn(path)).toBe(0);
    expect(descriptorsOn(`${path}-wal`)).toBe(0);
  });

  it('releases the file: it can be opened again at once, and writes after close are refused', async () => {
    const outbox = open();
    await outbox.append(value('a', 1));
    outbox.close();
    outbox.close();
    await expect(outbox.append(value('b', 2))).rejects.toThrow('the outbox is closed');
    const reopened = open();
    expect(reopened.pending().map((p) => p.key)).toEqual(['a']);
    reopened.close();
  });
});
