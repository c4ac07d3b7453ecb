import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import pg from 'pg';
import { SupabaseStorage } from '../../src/storage/supabase-storage.js';
import type { PgServerInfo, PgServerMessage } from './pg-server.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The embedded PostgreSQL + test gateway running in a child process, as seen from the bench. */
export interface PgEnv {
  info: PgServerInfo;
  /** A SupabaseStorage through the gateway with the service role key. */
  storage(): SupabaseStorage;
  /** A plain supabase-js client through the gateway, configured as a server-side client. */
  client(): SupabaseClient;
  /** A direct superuser pool to the bench database. */
  pool(max?: number): pg.Pool;
  close(): Promise<void>;
}

/** Starts PostgreSQL and the gateway (a few seconds). Rejects with the child's error if they fail. */
export async function startPgEnv(): Promise<PgEnv> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'pg-server.ts')], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8000);
  });
  const info = await new Promise<PgServerInfo>((resolve, reject) => {
    child.once('message', (message: PgServerMessage) => {
      if ('ready' in message) resolve(message.ready);
      else reject(new Error(`PostgreSQL / gateway did not start:\n${message.error}`));
    });
    child.once('exit', (code) =>
      reject(new Error(`PostgreSQL / gateway process exited (${code}) before it was ready:\n${stderr}`)),
    );
  });
  const pools: pg.Pool[] = [];
  const storages: SupabaseStorage[] = [];
  return {
    info,
    storage: () => {
      const storage = new SupabaseStorage({ url: info.url, key: info.serviceRoleKey });
      storages.push(storage);
      return storage;
    },
    client: () =>
      createClient(info.url, info.serviceRoleKey, {
        auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      }),
    pool: (max = 4) => {
      const pool = new pg.Pool({ ...info.admin, max });
      pool.on('error', () => {});
      pools.push(pool);
      return pool;
    },
    close: async () => {
      await Promise.all(storages.map((s) => s.close()));
      await Promise.all(pools.map((p) => p.end().catch(() => {})));
      await stopChild(child);
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.disconnect();
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}
