import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../../src/storage/contract/errors.js';
import { migrate } from '../../src/storage/postgres/migrate.js';
import {
  classifyPgError,
  connectionStringPassword,
  redactor,
} from '../../src/storage/postgres/postgres-errors.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { put } from '../../src/testing/index.js';
import { connectionUrl, createDatabase } from '../support/plain-postgres.js';
import { freePort, PostgresCluster, type PostgresConnectionInfo } from '../support/postgres.js';

/** A cluster of its own, so that this file may stop and start it. */
let cluster: PostgresCluster;
let migrated: PostgresConnectionInfo;
const opened: PostgresStorage[] = [];
beforeAll(async () => {
  cluster = await PostgresCluster.create();
  migrated = await createDatabase(cluster.info);
  await migrate({ connectionString: connectionUrl(migrated) });
});
afterAll(async () => {
  await Promise.all(opened.map((storage) => storage.close()));
  await cluster?.destroy();
});

function storageAt(info: PostgresConnectionInfo): PostgresStorage {
  const storage = new PostgresStorage({ connectionString: connectionUrl(info) });
  opened.push(storage);
  return storage;
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as Error,
  );

/** Everything about an error a log line could show. */
const printed = (error: Error) =>
  [error.message, error.stack, String((error.cause as Error | undefined)?.message ?? '')].join('\n');

const SECRET = 'S3cret/Pass@word-never-printed';

describe('PostgresStorage failures, classified', () => {
  it('a closed port is transient, and the message does not hold the password', async () => {
    const error = await failure(
      storageAt({ ...cluster.info, port: await freePort(), password: SECRET }).getMany(['k']),
    );
    expect(error).toBeInstanceOf(TransientStorageError);
    expect(error.message).toContain('ECONNREFUSED');
    expect(printed(error)).not.toContain(SECRET);
    expect(printed(error)).not.toContain(encodeURIComponent(SECRET));
  });

  it('a wrong password is a configuration error that does not hold the password', async () => {
    const error = await failure(storageAt({ ...migrated, password: SECRET }).highWaterMark());
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect(error.message).toContain('28P01');
    expect(printed(error)).not.toContain(SECRET);
    expect(printed(error)).not.toContain(encodeURIComponent(SECRET));
  });

  it('a database without the migrations is a configuration error that says how to apply them', async () => {
    const error = await failure(storageAt(await createDatabase(cluster.info)).getMany(['k']));
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect(error.message).toContain('42883');
    expect(error.message).toContain('npx hybrid-cache-migrate');
  });

  it('a statement timeout is transient', async () => {
    const holder = await cluster.connect(migrated.database);
    const pool = new pg.Pool({ ...migrated, max: 1, statement_timeout: 100 });
    const storage = new PostgresStorage({ pool });
    try {
      await storage.apply([put('locked', 1, 'v')]);
      // Another transaction holds the row, so the write waits until the server cancels it.
      await holder.query('begin');
      await holder.query('select * from public.hybrid_cache_entries where key = $1 for update', ['locked']);
      const error = await failure(storage.apply([put('locked', 2, 'w')]));
      expect(error).toBeInstanceOf(TransientStorageError);
      expect(error.message).toContain('57014');
    } finally {
      await holder.query('rollback');
      await holder.end();
      await storage.close();
      await pool.end();
    }
  });

  it("an aborted call rejects with the signal's reason at once, and the pool goes on working", async () => {
    const holder = await cluster.connect(migrated.database);
    const storage = storageAt(migrated);
    const controller = new AbortController();
    try {
      await storage.apply([put('held', 1, 'v')]);
      await holder.query('begin');
      await holder.query('select * from public.hybrid_cache_entries where key = $1 for update', ['held']);
      const call = failure(storage.apply([put('held', 2, 'w')], { signal: controller.signal }));
      // Abort once the write is seen waiting for the row lock in the server. The holder reads
      // pg_stat_activity inside its transaction, which keeps the first snapshot it took unless
      // cleared: a write still getting its connection then (the pool's idle one may be busy
      // sending the doorbell's ring) would never be seen.
      await expect
        .poll(
          async () =>
            (
              await holder
                .query('select pg_stat_clear_snapshot()')
                .then(() =>
                  holder.query(
                    "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%hybrid_cache_write%'",
                  ),
                )
            ).rows[0].n,
          { timeout: 10_000 },
        )
        .toBe(1);
      controller.abort(new Error('caller gave up'));
      expect((await call).message).toBe('caller gave up');
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
    expect((await storage.getMany(['held'])).get('held')?.version).toBeGreaterThanOrEqual(1);
  });

  it('a stopped server is transient; the same adapter works again once it is back', async () => {
    const storage = storageAt(migrated);
    await storage.apply([put('restart', 1, 'before')]);
    await cluster.stop();
    try {
      const error = await failure(storage.getMany(['restart']));
      expect(error).toBeInstanceOf(TransientStorageError);
    } finally {
      await cluster.start();
    }
    expect((await storage.getMany(['restart'])).get('restart')).toMatchObject({
      version: 1,
      json: '"before"',
    });
  });

  it('close() ends a pool it created, and leaves a pool passed in open', async () => {
    const pool = new pg.Pool({ ...migrated, max: 1 });
    try {
      const borrowed = new PostgresStorage({ pool, table: 'conversation_threads' });
      await borrowed.highWaterMark();
      await borrowed.close();
      expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
    const own = new PostgresStorage({ connectionString: connectionUrl(migrated) });
    await own.highWaterMark();
    await own.close();
    const error = await failure(own.highWaterMark());
    expect(error).toBeInstanceOf(TransientStorageError);
    expect(error.message).toContain('closed');
  });
});

describe('classifyPgError', () => {
  const redact = redactor([SECRET]);
  const sqlError = (code: string) => Object.assign(new Error(`server says ${code}`), { code });
  it.each([
    ['40001', TransientStorageError],
    ['40P01', TransientStorageError],
    ['53300', TransientStorageError],
    ['57014', TransientStorageError],
    ['57P01', TransientStorageError],
    ['08006', TransientStorageError],
    ['ECONNREFUSED', TransientStorageError],
    ['ECONNRESET', TransientStorageError],
    ['42883', StorageConfigurationError],
    ['42P01', StorageConfigurationError],
    ['28P01', StorageConfigurationError],
    ['28000', StorageConfigurationError],
    ['42501', StorageConfigurationError],
    ['23505', PermanentStorageError],
    ['22P02', PermanentStorageError],
  ])('%s -> %o', (code, kind) => {
    expect(classifyPgError('call', sqlError(code), redact)).toBeInstanceOf(kind);
  });

  it('classifies an AggregateError of connection attempts by its errors', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED' });
    expect(classifyPgError('call', new AggregateError([refused], ''), redact)).toBeInstanceOf(
      TransientStorageError,
    );
  });

  it('removes the password from messages, as given and URL-encoded, and keeps no cause that might hold it', () => {
    const error = classifyPgError(
      'call',
      new TypeError(`Invalid URL: postgres://u:${encodeURIComponent(SECRET)}@h`),
      redact,
    );
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect(printed(error)).not.toContain(encodeURIComponent(SECRET));
    expect(error.cause).toBeUndefined();
  });

  it('finds the password of a connection string in URL and key=value forms', () => {
    expect(connectionStringPassword(`postgres://u:${encodeURIComponent(SECRET)}@h:5432/db`)).toBe(SECRET);
    expect(connectionStringPassword('postgresql://h/db?user=u&password=p%20w')).toBe('p w');
    expect(connectionStringPassword("host=h user=u password='it\\'s' dbname=d")).toBe("it's");
    expect(connectionStringPassword('host=h password=plain dbname=d')).toBe('plain');
    expect(connectionStringPassword('postgres://h/db')).toBeUndefined();
  });
});
