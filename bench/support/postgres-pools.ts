/** The node-postgres pools the PostgreSQL cases open, and the one way to close them all. */
import pg from 'pg';
import type { BenchSupabase } from './supabase.js';

/**
 * The database as a connection string. PostgresStorage's doorbell opens its own connection with
 * the pool's options, and node-postgres keeps a pool's `password` option non-enumerable, so it is
 * lost when those options are copied: given a pool made from separate fields (`supabase.pool()`),
 * the doorbell fails to authenticate and keeps reconnecting. A password inside the connection
 * string survives the copy.
 */
export function connectionString(supabase: BenchSupabase): string {
  const { user, password, host, port, database } = supabase.admin;
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}`;
}

const pools: pg.Pool[] = [];
/** A pool on the bench's database that endPools() ends, its idle connections' errors ignored. */
export function pgPool(supabase: BenchSupabase, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: connectionString(supabase), max });
  pool.on('error', () => {});
  pools.push(pool);
  return pool;
}

/** Ends every pool pgPool made. */
export async function endPools(): Promise<void> {
  await Promise.all(pools.splice(0).map((pool) => pool.end().catch(() => {})));
}
