import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';

// The outbox module is imported inside the test, not at the top, as in a process whose first cache
// opens an outbox: its schema description is then built while this test runs (and per-test coverage
// sees it), rather than while the file is being loaded.

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-first-open-upgrade-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The outbox of the first release, as it wrote it: schema 1, no application id, three tables. */
function firstReleaseOutbox(path: string): void {
  const raw = new Database(path);
  raw.exec(`
    CREATE TABLE pending (
      key TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, json TEXT, expires_at INTEGER,
      queued_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (name, value) VALUES ('highest_version', 40);
    CREATE TABLE dead_letters (
      id INTEGER PRIMARY KEY, key TEXT NOT NULL, version INTEGER NOT NULL, json TEXT, expires_at INTEGER,
      error TEXT NOT NULL, failed_at INTEGER NOT NULL
    );
    INSERT INTO pending VALUES ('a', 50, '{"n":1}', NULL, 7), ('b', 51, NULL, NULL, 8);
    PRAGMA user_version = 1;
  `);
  raw.close();
}

describe('the first outbox a process opens', () => {
  it('is a first-release outbox: it is upgraded in place and its pending writes replay', async () => {
    const path = join(dir, 'outbox.db');
    firstReleaseOutbox(path);
    const { SqliteOutbox } = await import('../../src/sync/sqlite-outbox.js');
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    try {
      expect(outbox.pending()).toEqual([
        { key: 'a', version: 50, json: '{"n":1}', expiresAt: null, queuedAt: 7 },
        { key: 'b', version: 51, json: null, expiresAt: null, queuedAt: 8 },
      ]);
      expect(outbox.highestVersion()).toBe(51);
    } finally {
      outbox.close();
    }
    // Upgraded, it is now an outbox the store refuses as such.
    expect(() => new SqliteStorage({ path })).toThrow(/is a hybrid-cache outbox file, not a store/);
  });
});
