import { afterAll, beforeAll, describe, it } from 'vitest';
import { migrate } from '../../src/storage/postgres/migrate.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { SQL_TABLES, type SqlTable } from '../../src/storage/sql-functions/table-functions.js';
import { describeAppendContract, describeStorageContract } from '../../src/testing/index.js';
import { connectionUrl, createDatabase } from '../support/plain-postgres.js';
import { PostgresCluster } from '../support/postgres.js';

const runner = { describe, it, beforeAll, afterAll };

// A cluster of its own (the contract includes the change feed): the snapshot's xmin is
// cluster-wide, so a transaction another test file holds open in the shared cluster would hold
// back the changes these tests wait for. One database, migrated by migrate(); each suite opens
// its own adapter (and pool).
let cluster: Promise<PostgresCluster> | undefined;
let database: Promise<string> | undefined;
const connectionString = () => {
  cluster ??= PostgresCluster.create();
  database ??= cluster.then(async ({ info }) => {
    const url = connectionUrl(await createDatabase(info));
    await migrate({ connectionString: url, max: 1 });
    return url;
  });
  return database;
};
afterAll(async () => (await cluster)?.destroy());

for (const table of Object.keys(SQL_TABLES) as SqlTable[]) {
  describeStorageContract(
    `PostgresStorage on ${table} (node-postgres -> PostgreSQL)`,
    async () => {
      const storage = new PostgresStorage({ connectionString: await connectionString(), table });
      return { storage, cleanup: () => storage.close() };
    },
    runner,
  );
  describeAppendContract(
    `PostgresStorage on ${table} (node-postgres -> PostgreSQL)`,
    async () => {
      const storage = new PostgresStorage({ connectionString: await connectionString(), table });
      return { storage, cleanup: () => storage.close() };
    },
    runner,
  );
}
