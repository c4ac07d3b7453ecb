import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyTablesWhenQuiet, type Sql } from '../support/empty-tables.js';
import { migratedDatabase } from '../support/plain-postgres.js';

let pool: pg.Pool;
beforeAll(async () => {
  pool = new pg.Pool({ ...(await migratedDatabase()), max: 4 });
  pool.on('error', () => {});
});
afterAll(async () => {
  await pool?.end();
});

describe('emptying the tables between runs of a test that reuses one database', () => {
  it('waits for a statement still running elsewhere, so its late commit is emptied too', async () => {
    await pool.query('create table public.late_rows (x int)');
    const holder = await pool.connect();
    await holder.query('select pg_advisory_lock(7)');
    // A statement from the run before, held on the server until the lock is released.
    const late = pool.query(
      'with l as (select pg_advisory_xact_lock(7)) insert into public.late_rows select 1 from l',
    );
    // Until the server shows it waiting, it has not arrived yet.
    while (
      (
        await pool.query(
          "select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted",
        )
      ).rows[0].n === 0
    );
    let sawBusy = false;
    const sql: Sql = async (text) => {
      const rows = (await pool.query(text)).rows;
      if (!sawBusy && (rows[0] as { busy?: number } | undefined)?.busy) {
        sawBusy = true;
        // Only now does the late statement finish: the emptying must not have started before it.
        await holder.query('select pg_advisory_unlock(7)');
      }
      return rows;
    };
    const passes = await emptyTablesWhenQuiet(sql, ['late_rows']);
    await late;
    holder.release();
    expect(sawBusy).toBe(true);
    expect(passes).toBeGreaterThan(0);
    expect((await pool.query('select count(*)::int as n from public.late_rows')).rows[0].n).toBe(0);
  });
});
