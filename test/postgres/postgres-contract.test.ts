import { afterAll, beforeAll, describe, it } from 'vitest';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { SQL_TABLES, type SqlTable } from '../../src/storage/sql-functions/table-functions.js';
import { describeAppendContract, describeStorageContract } from '../../src/testing/index.js';
import { connectionUrl, migratedDatabase } from '../support/plain-postgres.js';

const runner = { describe, it, beforeAll, afterAll };

// One database for the file, migrated by migrate(); each suite opens its own adapter (and pool).
let database: ReturnType<typeof migratedDatabase> | undefined;
const connectionString = async () => {
  database ??= migratedDatabase();
  return connectionUrl(await database);
};

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
