import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { describeStorageContract } from './storage-contract.js';

describeStorageContract('SqliteStorage (file)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sqlite-contract-'));
  const storage = new SqliteStorage({ path: join(dir, 'store.db') });
  return {
    storage,
    cleanup: async () => {
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describeStorageContract('SqliteStorage (:memory:)', async () => {
  const storage = new SqliteStorage({ path: ':memory:' });
  return { storage, cleanup: () => storage.close() };
});
