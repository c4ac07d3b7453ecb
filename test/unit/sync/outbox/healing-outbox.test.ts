import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { HealingOutbox } from '../../../../src/sync/outbox/healing-outbox.js';
import type { OutboxRows } from '../../../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger, type LogLine } from '../../../helpers/cache.js';
import { pendingItem, pendingValue, turns } from '../../../helpers/outbox.js';
import { TestEnvironment } from '../../../helpers/outbox-environment.js';

let dir: string;
let path: string;
let environment: TestEnvironment;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-healing-outbox-'));
  path = join(dir, 'outbox.db');
  environment = new TestEnvironment();
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const open = () => HealingOutbox.open({ path, durability: 'process', environment });
const noRows = (): OutboxRows => ({ values: [], items: [], appended: [], highestVersion: 0 });
const removeFiles = () => {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
};

describe('HealingOutbox', () => {
  it('asks for a heal on the turn after the loss and on every tick until a reopen succeeds, then no more', async () => {
    const outbox = open();
    let asked = 0;
    outbox.onLost(() => asked++);
    removeFiles();
    environment.tick();
    expect(outbox.lost).toBe(true);
    expect(asked).toBe(0);
    await turns(1);
    expect(asked).toBe(1);
    environment.tick();
    expect(asked).toBe(2);

    await outbox.reopen(() => ({ ...noRows(), values: [pendingValue('a', 10)] }));
    expect(outbox.lost).toBe(false);
    expect(outbox.failure).toBeUndefined();
    environment.tick();
    await turns(1);
    expect(asked).toBe(2);
    await outbox.append(pendingValue('b', 11));
    expect(outbox.pending().map((row) => row.key)).toEqual(['a', 'b']);
    expect(outbox.highestVersion()).toBe(11);
    await outbox.close();
  });

  it('a reopen while its file is fine changes nothing and takes no rows', async () => {
    const outbox = open();
    await outbox.append(pendingValue('a', 10));
    let taken = 0;
    await outbox.reopen(() => {
      taken++;
      return noRows();
    });
    expect(taken).toBe(0);
    expect(outbox.pending().map((row) => row.key)).toEqual(['a']);
    await outbox.close();
  });

  it("the lost file's log left at the path is not applied to the file put there", async () => {
    const outbox = open();
    await outbox.append(pendingValue('ours', 10));
    const other = join(dir, 'backup.db');
    const backup = SqliteOutbox.open({ path: other, durability: 'process' });
    await backup.append(pendingValue('theirs', 5));
    await backup.close();
    // Only the main file is replaced: the log at the path is still the lost file's.
    renameSync(other, path);
    environment.tick();
    expect(outbox.lost).toBe(true);

    await outbox.reopen(noRows);
    expect(outbox.pending().map((row) => row.key)).toEqual(['theirs']);
    await outbox.close();
  });

  it('closed: no more heals asked for, and a reopen is refused', async () => {
    const outbox = open();
    let asked = 0;
    outbox.onLost(() => asked++);
    removeFiles();
    environment.tick();
    expect(outbox.lost).toBe(true);
    await outbox.close();
    await turns(1);
    environment.tick();
    expect(asked).toBe(0);
    await expect(outbox.reopen(noRows)).rejects.toThrow(new OutboxError(`the outbox at ${path} is closed`));
  });

  it('closed while a heal releases the lost file: the heal stops there, and says why', async () => {
    const outbox = open();
    removeFiles();
    environment.tick();
    let taken = 0;
    const healing = outbox.reopen(() => {
      taken++;
      return noRows();
    });
    await outbox.close();
    await expect(healing).rejects.toThrow(new OutboxError(`the outbox at ${path} is closed`));
    expect(taken).toBe(0);
  });

  it('works with no listener and no logger: a loss, failed heals and ticks throw nothing unexpected', async () => {
    const outbox = open();
    removeFiles();
    expect(() => environment.tick()).not.toThrow();
    await turns(1);
    const cannotRead = (): OutboxRows => {
      throw new Error('memory could not be read (injected)');
    };
    await expect(outbox.reopen(cannotRead)).rejects.toBeInstanceOf(OutboxError);
    await expect(outbox.reopen(cannotRead)).rejects.toBeInstanceOf(OutboxError);
    expect(() => environment.tick()).not.toThrow();
    await outbox.close();
  });
});

describe('HealingOutbox when a new file cannot be written', () => {
  const letter = {
    key: 'dead',
    version: 7,
    json: '"x"',
    expiresAt: null,
    error: 'rejected (injected)',
    failedAt: 1,
  };
  const cannotRead = (): OutboxRows => {
    throw new Error('memory could not be read (injected)');
  };

  it('says what happened and what to do once as an error, then at debug; refuses the lost file; keeps its dead letters', async () => {
    const log = capturingLogger();
    const outbox = HealingOutbox.open({ path, durability: 'process', environment, logger: log.logger });
    outbox.deadLetter(letter);
    removeFiles();
    environment.tick();
    const lostReason = outbox.failure?.message;
    expect(lostReason).toBeDefined();

    const first = await outbox.reopen(cannotRead).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(OutboxError);
    expect((first as Error).message).toBe(
      `the outbox at ${path} was deleted or replaced while the cache was running, and a new one could not be ` +
        'written there: memory could not be read (injected). Writes are refused until it can (retried every ' +
        'maintenance tick); writes accepted before keep flushing to the store from memory',
    );
    expect(((first as Error).cause as Error).message).toBe('memory could not be read (injected)');
    expect(outbox.failure).toBe(first);
    expect(() => outbox.pending()).toThrow(first as Error);
    expect(outbox.deadLetters()).toEqual([letter]);
    // With no file, flushes that finish and an anchoring step have nothing to record: no throw.
    expect(() => outbox.acknowledge([{ key: 'a', version: 1 }])).not.toThrow();
    expect(() => outbox.anchor([], 5)).not.toThrow();

    await expect(outbox.reopen(cannotRead)).rejects.toBeInstanceOf(OutboxError);
    const failed = (l: LogLine) => /could not write a new outbox file/.test(l.msg);
    expect(log.at('error').filter(failed)).toEqual([
      expect.objectContaining({
        path,
        lost: lostReason,
        err: expect.objectContaining({ message: 'memory could not be read (injected)' }),
        msg: 'could not write a new outbox file; refusing writes until it can',
      }),
    ]);
    expect(log.at('debug').filter(failed)).toEqual([
      expect.objectContaining({ path, msg: 'could not write a new outbox file yet' }),
    ]);

    // Once it can: every kind of row is counted, and the dead letter is carried into the new file.
    await outbox.reopen(() => ({
      values: [pendingValue('a', 10)],
      items: [pendingItem('log', 'i1', 11)],
      appended: [pendingValue('b', 12)],
      highestVersion: 12,
    }));
    expect(log.at('warn').filter((l) => /a new one was written/.test(l.msg))).toEqual([
      expect.objectContaining({ path, writes: 3, values: 1, items: 1, deadLetters: 1 }),
    ]);
    expect(outbox.deadLetters()).toEqual([letter]);
    await outbox.reopen(cannotRead); // the file is fine again: nothing to do, nothing read
    await outbox.close();
  });

  it('closes with no file open', async () => {
    const outbox = open();
    removeFiles();
    environment.tick();
    await expect(outbox.reopen(cannotRead)).rejects.toBeInstanceOf(OutboxError);
    await expect(outbox.close()).resolves.toBeUndefined();
  });

  it('asks for a heal at the maintenance interval it was given', async () => {
    const outbox = HealingOutbox.open({
      path,
      durability: 'process',
      environment,
      maintenanceIntervalMs: 250,
    });
    const before = environment.intervals.length;
    removeFiles();
    environment.tick();
    // The retry of the heal is the one task asked for after the loss.
    expect(environment.intervals.slice(before)).toEqual([250]);
    await outbox.close();
    const defaults = HealingOutbox.open({ path: join(dir, 'other.db'), durability: 'process', environment });
    const start = environment.intervals.length;
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, `other.db${suffix}`), { force: true });
    environment.tick();
    expect(environment.intervals.slice(start)).toEqual([1_000]);
    await defaults.close();
  });
});

describe('the rows a heal writes into a new file', () => {
  it('keeps log floors (none for a delete), item dead letters as items, and the clock’s newest version', async () => {
    const outbox = open();
    const itemLetter = {
      key: 'log',
      version: 3,
      json: '"lost turn"',
      expiresAt: null,
      itemId: 'i3',
      error: 'rejected (injected)',
      failedAt: 1,
    };
    outbox.deadLetter(itemLetter);
    removeFiles();
    environment.tick();
    await outbox.reopen(() => ({
      values: [
        { ...pendingValue('value', 10), logFloor: 4 },
        { ...pendingValue('gone', 11, null), logFloor: 6 },
      ],
      items: [pendingItem('log', 'i12', 12)],
      appended: [],
      highestVersion: 99,
    }));
    const floors = new Map(outbox.pending().map((row) => [row.key, row.logFloor ?? 0]));
    expect(floors).toEqual(
      new Map([
        ['gone', 0],
        ['value', 4],
      ]),
    );
    expect(outbox.deadLetters()).toEqual([itemLetter]);
    expect(outbox.highestVersion()).toBe(99);
    await outbox.close();
  });

  it('a delete from memory takes the older items of the file put at the path with it', async () => {
    const outbox = open();
    await outbox.append(pendingValue('mine', 1));
    const other = join(dir, 'backup.db');
    const backup = SqliteOutbox.open({ path: other, durability: 'process' });
    await backup.append(pendingItem('log', 'old', 5));
    await backup.append(pendingItem('other', 'kept', 6));
    await backup.close();
    removeFiles();
    renameSync(other, path);
    environment.tick();
    expect(outbox.lost).toBe(true);
    await outbox.reopen(() => ({
      ...noRows(),
      values: [pendingValue('log', 10, null)],
      highestVersion: 10,
    }));
    expect(outbox.pendingItems().map((row) => row.item.id)).toEqual(['kept']);
    await outbox.close();
  });
});
