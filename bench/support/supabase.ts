import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { PostgresConnectionInfo } from '../../test/support/postgres.js';
import { type SupabaseClients, supabaseClients } from '../../test/support/supabase-clients.js';
import type { SupabaseServerInfo } from './supabase-server.js';

/** The bench's PostgreSQL + gateway (in a child process), and the server facts the results record. */
export interface BenchSupabase extends SupabaseClients {
  postgres: { version: string; settings: Record<string, string> };
  /** The gateway's URL and service role key, for a SupabaseStorage in another process. */
  url: string;
  serviceRoleKey: string;
  /** The superuser connection to the same database, for a PostgresStorage in another process. */
  admin: PostgresConnectionInfo;
}

/** Starts PostgreSQL and the gateway in a child process (a few seconds). */
export async function startSupabase(): Promise<BenchSupabase> {
  const server = join(import.meta.dirname, 'supabase-server.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', server], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const info = await new Promise<SupabaseServerInfo>((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', () => reject(new Error(`PostgreSQL / gateway did not start:\n${stderr}`)));
  });
  const clients = supabaseClients(info.url, info.serviceRoleKey, info.admin);
  const [version] = await clients.sql<{ version: string }>('select version()');
  const settings = await clients.sql<{ name: string; setting: string }>(
    `select name, setting from pg_settings
     where name in ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections')`,
  );
  return {
    ...clients,
    url: info.url,
    serviceRoleKey: info.serviceRoleKey,
    admin: info.admin,
    postgres: {
      version: version?.version ?? '',
      settings: Object.fromEntries(settings.map((row) => [row.name, row.setting])),
    },
    close: async () => {
      await clients.close();
      if (child.connected) child.disconnect();
      const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(kill);
    },
  };
}
