import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { SqliteStorage } from '../../src/storage/sqlite/sqlite-storage.js';
import { describeAppendContract, describeStorageContract } from '../../src/testing/index.js';

const runner = { describe, it, beforeAll, afterAll };

/** A store in a file of its own, removed after the suite. */
async function fileStore() {
  const dir = await mkdtemp(join(tmpdir(), 'sqlite-contract-'));
  const storage = new SqliteStorage({ path: join(dir, 'store.db') });
  return {
    storage,
    cleanup: async () => {
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describeStorageContract('SqliteStorage (file)', fileStore, runner);

describeStorageContract(
  'SqliteStorage (:memory:)',
  async () => {
    const storage = new SqliteStorage({ path: ':memory:' });
    return { storage, cleanup: () => storage.close() };
  },
  runner,
);

describeAppendContract('SqliteStorage (file)', fileStore, runner);
