import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger } from '../../../helpers/cache.js';
import { pendingValue as value } from '../../../helpers/outbox.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-lost-'));
  path = join(dir, 'outbox.db');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Appends one write at a time; returns the 1-based index of the first refused one (0 if none was). */
async function firstRefused(outbox: SqliteOutbox, count: number, from = 100): Promise<number> {
  for (let i = 1; i <= count; i++) {
    const refused = await outbox.append(value(`after-${i}`, from + i)).then(
      () => false,
      (error: unknown) => {
        expect(error).toBeInstanceOf(OutboxError);
        expect((error as Error).message).toMatch(/deleted or replaced/);
        return true;
      },
    );
    if (refused) return i;
  }
  return 0;
}

describe.each(['process', 'fsync'] as const)(
  'durability %s: the outbox file deleted under the open handle',
  (durability) => {
    it('the next write is refused, and every write after it', async () => {
      const log = capturingLogger();
      const outbox = SqliteOutbox.open({
        path,
        durability,
        logger: log.logger,
        maintenanceIntervalMs: 60_000,
      });
      await outbox.append(value('before', 1));
      unlinkSync(path);
      expect(await firstRefused(outbox, 1)).toBe(1);
      expect(outbox.lost).toBe(true);
      await expect(outbox.append(value('later', 500))).rejects.toThrow(/deleted or replaced/);
      // Said once, however many writes are refused.
      expect(log.at('error').map((l) => l.msg)).toEqual([
        'the outbox file was deleted or replaced; refusing writes',
      ]);
      outbox.close();
    });

    it('its log alone deleted: noticed within a few commits, then every write is refused', async () => {
      const outbox = SqliteOutbox.open({ path, durability, maintenanceIntervalMs: 60_000 });
      await outbox.append(value('before', 1));
      unlinkSync(`${path}-wal`);
      const refusedAt = await firstRefused(outbox, 16);
      expect(refusedAt).toBeGreaterThan(0);
      expect(await firstRefused(outbox, 1, 1_000)).toBe(1);
      expect(outbox.failure?.message).toMatch(/deleted or replaced/);
      outbox.close();
    });
  },
);

describe('how soon a log deleted under the open handle is noticed', () => {
  it('durability process: the log is looked at after every commit, so the first write after is refused', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 60_000 });
    unlinkSync(`${path}-wal`);
    expect(await firstRefused(outbox, 20)).toBe(1);
    outbox.close();
  });

  it('durability fsync: the log is looked at every 16 commits, so the 16th write is the first refused', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'fsync', maintenanceIntervalMs: 60_000 });
    unlinkSync(`${path}-wal`);
    expect(await firstRefused(outbox, 20)).toBe(16);
    expect(outbox.lost).toBe(true);
    outbox.close();
  });
});

describe('an outbox whose file was lost', () => {
  const letter = (key: string) => ({
    key,
    version: 7,
    json: '"x"',
    expiresAt: null,
    error: 'rejected (injected)',
    failedAt: 1,
  });

  it('writes nothing more into it: no dead letter, no re-queue, no new versions; its dead letters are still read', async () => {
    const outbox = SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 60_000 });
    await outbox.append(value('before', 1));
    outbox.deadLetter(letter('first'));
    unlinkSync(path);
    expect(await firstRefused(outbox, 1)).toBe(1);

    expect(() => outbox.deadLetter(letter('second'))).toThrow(/deleted or replaced/);
    expect(() => outbox.requeueDeadLetters()).toThrow(/deleted or replaced/);
    expect(outbox.deadLetters()).toEqual([letter('first')]);
    await outbox.close();
    // A lost file is never replayed: the anchoring step has nothing to record in it, closed or not.
    expect(() => outbox.anchor([{ key: 'before', from: 1, to: 5 }], 5)).not.toThrow();
    await expect(outbox.append(value('late', 9))).rejects.toThrow('the outbox is closed');
  });
});
