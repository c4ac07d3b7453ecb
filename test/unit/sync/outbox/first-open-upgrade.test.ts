import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStorage } from '../../../../src/storage/sqlite/sqlite-storage.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { firstReleaseOutbox } from '../../../helpers/outbox.js';

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

describe('the first outbox a process opens', () => {
  it('is a first-release outbox: it is upgraded in place and its pending writes replay', async () => {
    const path = join(dir, 'outbox.db');
    firstReleaseOutbox(path);
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
