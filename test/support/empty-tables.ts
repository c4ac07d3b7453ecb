/** Runs one SQL statement on a connection to the test database and returns its rows. */
export type Sql = <T extends Record<string, unknown>>(text: string) => Promise<T[]>;

/**
 * Empties the cache tables for the next run of a test that reuses one database. A crashed run's
 * statement may still be executing on the server after its client gave up on it (an aborted call
 * can still commit, by contract), and if it committed after the tables were emptied it would plant
 * the old run's keys, at versions from its clock, in the new run. So this first waits until no
 * other connection to the database is running a statement; statements only finish, so each pass
 * waits on the server, never on a timer. Returns how many passes found a statement running.
 */
export async function emptyTablesWhenQuiet(sql: Sql, tables: readonly string[]): Promise<number> {
  let pass = 0;
  for (; ; pass++) {
    const [row] = await sql<{ busy: number }>(
      `select count(*)::int as busy from pg_catalog.pg_stat_activity
       where datname = current_database() and pid <> pg_catalog.pg_backend_pid()
         and backend_type = 'client backend' and state <> 'idle'`,
    );
    if ((row?.busy ?? 0) === 0) break;
    if (pass >= 50_000) throw new Error(`other connections kept running statements (${row?.busy})`);
  }
  for (const table of tables) await sql(`DELETE FROM public.${table}`);
  return pass;
}
