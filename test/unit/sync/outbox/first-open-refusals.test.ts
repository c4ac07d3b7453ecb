import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStorage } from '../../../../src/storage/sqlite/sqlite-storage.js';
import { OutboxError } from '../../../../src/sync/errors.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';

// The outbox module is imported inside the test, not at the top, as in a process whose first cache
// opens an outbox: its messages are then built while this test runs (and per-test coverage sees
// them), rather than while the file is being loaded.

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-first-open-refusals-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const refusal = (open: () => unknown): OutboxError => {
  try {
    open();
  } catch (error) {
    expect(error).toBeInstanceOf(OutboxError);
    return error as OutboxError;
  }
  throw new Error('the outbox opened');
};

describe('the first outbox a process opens', () => {
  it("is refused when it is the store's file or not a database, untouched, with what to do", async () => {
    const storePath = join(dir, 'store.db');
    await new SqliteStorage({ path: storePath }).close();
    const damagedPath = join(dir, 'damaged.db');
    const garbage = Buffer.from('this is not a SQLite database\n'.repeat(200));
    writeFileSync(damagedPath, garbage);
    const storeBytes = readFileSync(storePath);

    expect(refusal(() => SqliteOutbox.open({ path: storePath, durability: 'process' })).message).toBe(
      `${storePath} is a hybrid-cache store file, not an outbox; it was left untouched: ` +
        'give the outbox a file of its own (outbox.path / CACHE_DATA_DIR)',
    );
    expect(readFileSync(storePath)).toEqual(storeBytes);

    const damaged = refusal(() => SqliteOutbox.open({ path: damagedPath, durability: 'process' }));
    expect(damaged.message).toBe(
      `the outbox at ${damagedPath} is not a readable SQLite database (file is not a database); ` +
        'it was left untouched: restore it from a backup or move it aside to start empty',
    );
    expect((damaged.cause as { code?: string }).code).toBe('SQLITE_NOTADB');
    expect(readFileSync(damagedPath)).toEqual(garbage);
  });
});
