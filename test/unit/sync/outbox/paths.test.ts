import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { MemoryOutbox, type Outbox, type PendingWrite } from '../../../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-paths-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const write = (
  key: string,
  version: number,
  json: string | null = JSON.stringify(version),
): PendingWrite => ({
  key,
  version,
  json,
  expiresAt: null,
  queuedAt: Date.now(),
});

/** Runs `open` expecting it to throw, and returns what it threw. */
function openError(open: () => unknown): OutboxError {
  let thrown: unknown;
  try {
    open();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(OutboxError);
  return thrown as OutboxError;
}

const causeCode = (error: Error): string | undefined => (error.cause as { code?: string } | undefined)?.code;

describe('SqliteOutbox: where it opens', () => {
  it('creates missing parent directories', async () => {
    const path = join(dir, 'nested', 'deeper', 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append(write('a', 1));
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending().map((p) => p.key)).toEqual(['a']);
    reopened.close();
  });

  it("works in ':memory:' without a directory", async () => {
    const outbox = SqliteOutbox.open({ path: ':memory:', durability: 'process' });
    await outbox.append(write('a', 4));
    expect(outbox.pending().map((p) => [p.key, p.version])).toEqual([['a', 4]]);
    expect(outbox.highestVersion()).toBe(4);
    outbox.close();
  });

  it('names the path and the reason when the file cannot be opened (the path is a directory)', () => {
    const path = join(dir, 'a-directory');
    mkdirSync(path);
    const error = openError(() => SqliteOutbox.open({ path, durability: 'process' }));
    expect(error.code).toBe('ERR_OUTBOX');
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/unable to open/);
    expect(causeCode(error)).toBe('SQLITE_CANTOPEN');
  });

  it('names the path and the reason when its directory cannot be created (the parent is a file)', () => {
    const parent = join(dir, 'not-a-directory');
    writeFileSync(parent, 'x');
    const path = join(parent, 'outbox.db');
    const error = openError(() => SqliteOutbox.open({ path, durability: 'process' }));
    expect(error.message).toContain(path);
    expect(causeCode(error)).toMatch(/^(EEXIST|ENOTDIR)$/);
    expect(readFileSync(parent, 'utf8')).toBe('x');
  });
});

describe('SqliteOutbox: why it refuses to open', () => {
  it('reports a file cap too small for the outbox as a plain open failure, not as corruption', () => {
    const path = join(dir, 'outbox.db');
    const error = openError(() => SqliteOutbox.open({ path, durability: 'process', maxFileBytes: 1 }));
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/full/);
    expect(error.message).not.toMatch(/not a readable SQLite database|in use by another process/);
    expect(causeCode(error)).toBe('SQLITE_FULL');
  });

  it('refuses a damaged database (valid header, corrupt pages) as unreadable and leaves it untouched', () => {
    const path = join(dir, 'outbox.db');
    SqliteOutbox.open({ path, durability: 'process' }).close();
    const damaged = readFileSync(path);
    damaged.fill(0xab, 100, 4096); // keep the 100-byte header, garble the schema page
    writeFileSync(path, damaged);
    const error = openError(() => SqliteOutbox.open({ path, durability: 'process' }));
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/not a readable SQLite database.*left untouched/);
    expect(causeCode(error)).toBe('SQLITE_CORRUPT');
    expect(readFileSync(path)).toEqual(damaged);
  });

  it('keeps the SQLite error as the cause of a non-database file refusal', () => {
    const path = join(dir, 'outbox.db');
    writeFileSync(path, 'plain text, not SQLite '.repeat(200));
    const error = openError(() => SqliteOutbox.open({ path, durability: 'process' }));
    expect(causeCode(error)).toBe('SQLITE_NOTADB');
  });

  it('holds the file from the moment it reopens, before any write, and says who is in the way', () => {
    const path = join(dir, 'outbox.db');
    SqliteOutbox.open({ path, durability: 'process' }).close();
    const first = SqliteOutbox.open({ path, durability: 'process' }); // existing file: no migration writes
    const error = openError(() => SqliteOutbox.open({ path, durability: 'process' }));
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/in use by another process/);
    expect(causeCode(error)).toBe('SQLITE_BUSY');
    first.close();
  });

  it('refuses a newer schema without changing it, and reopens the current schema with its data', async () => {
    const current = join(dir, 'current.db');
    const outbox = SqliteOutbox.open({ path: current, durability: 'process' });
    await outbox.append(write('kept', 3));
    outbox.close();
    const reopened = SqliteOutbox.open({ path: current, durability: 'process' });
    expect(reopened.pending().map((p) => p.key)).toEqual(['kept']);
    expect(reopened.highestVersion()).toBe(3);
    reopened.close();

    const newer = join(dir, 'newer.db');
    SqliteOutbox.open({ path: newer, durability: 'process' }).close();
    const raw = new Database(newer);
    raw.pragma('user_version = 7');
    raw.close();
    const error = openError(() => SqliteOutbox.open({ path: newer, durability: 'process' }));
    expect(error.message).toContain(newer);
    expect(error.message).toMatch(/schema version 7/);
    const check = new Database(newer, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(7);
    check.close();
  });
});

describe('SqliteOutbox: group commit and the high-water mark', () => {
  it('records the highest version of a group even when it is not the last write, across reopen', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'fsync' });
    await Promise.all([outbox.append(write('a', 50)), outbox.append(write('b', 7))]);
    expect(outbox.commits).toBe(1);
    expect(outbox.highestVersion()).toBe(50);
    outbox.acknowledge([
      { key: 'a', version: 50 },
      { key: 'b', version: 7 },
    ]);
    expect(outbox.pending()).toEqual([]);
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'fsync' });
    expect(reopened.highestVersion()).toBe(50);
    reopened.close();
  });

  it('rejects a write it cannot record with the SQLite error as the cause, keeping earlier rows', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process', maxFileBytes: 64 * 1024 });
    await outbox.append(write('small', 1));
    const big = JSON.stringify('x'.repeat(150_000));
    const results = await Promise.allSettled([
      outbox.append(write('big', 2, big)),
      outbox.append(write('c', 3)),
    ]);
    for (const result of results) {
      expect(result.status).toBe('rejected');
      const reason = (result as PromiseRejectedResult).reason as OutboxError;
      expect(reason).toBeInstanceOf(OutboxError);
      expect(reason.message).toContain(path);
      expect(causeCode(reason)).toBe('SQLITE_FULL');
    }
    expect(outbox.pending().map((p) => p.key)).toEqual(['small']);
    expect(outbox.highestVersion()).toBe(1);
    outbox.close();
  });
});

describe('SqliteOutbox: closing', () => {
  it('commits appends still waiting for their group when it closes', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    const appended = outbox.append(write('late', 9));
    outbox.close();
    await expect(appended).resolves.toBeUndefined();
    expect(outbox.commits).toBe(1);
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending().map((p) => [p.key, p.version])).toEqual([['late', 9]]);
    reopened.close();
  });

  it('counts no transaction when closing with nothing waiting', async () => {
    const outbox = SqliteOutbox.open({ path: join(dir, 'outbox.db'), durability: 'process' });
    await outbox.append(write('a', 1));
    expect(outbox.commits).toBe(1);
    outbox.close();
    expect(outbox.commits).toBe(1);
  });

  it('rejects appends after close with an OutboxError saying it is closed', async () => {
    const outbox = SqliteOutbox.open({ path: join(dir, 'outbox.db'), durability: 'process' });
    outbox.close();
    const appended = outbox.append(write('a', 1));
    await expect(appended).rejects.toBeInstanceOf(OutboxError);
    await expect(appended).rejects.toThrow(/closed/);
  });

  it('ignores acknowledgements and repeated closes after close', async () => {
    const path = join(dir, 'outbox.db');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append(write('a', 1));
    outbox.close();
    expect(() => outbox.acknowledge([{ key: 'a', version: 1 }])).not.toThrow();
    expect(() => outbox.close()).not.toThrow();
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending().map((p) => p.key)).toEqual(['a']); // the late ack changed nothing
    reopened.close();
  });
});

describe('MemoryOutbox (durability none)', () => {
  it('accepts appends at once and keeps nothing to replay or to raise the clock', async () => {
    const outbox: Outbox = new MemoryOutbox(); // as the cache sees it
    expect(outbox.durable).toBe(false);
    await expect(outbox.append(write('a', 42))).resolves.toBeUndefined();
    expect(outbox.pending()).toEqual([]);
    expect(outbox.highestVersion()).toBe(0);
  });
});
