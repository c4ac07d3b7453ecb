import type { Logger } from 'pino';
import type { Config } from '../config/load-config.js';
import type { Storage } from '../storage/contract/types.js';
import { MemoryStorage } from '../storage/memory/memory-storage.js';
import { PostgresStorage } from '../storage/postgres/postgres-storage.js';
import { SqliteStorage } from '../storage/sqlite/sqlite-storage.js';
import { SupabaseStorage } from '../storage/supabase/supabase-storage.js';

/**
 * The store adapter the configured backend names. Over PostgreSQL (backend postgres, or supabase
 * with DATABASE_URL to listen on) it rings and hears the doorbell, so that daemons sharing the
 * database read each other's changes at once; `logger` says where the doorbell stands.
 */
export function createStorage(config: Config, logger?: Logger): Storage {
  const log = logger ? { logger: logger.child({ component: 'doorbell' }) } : {};
  const { storage, cache } = config;
  switch (storage.backend) {
    case 'memory':
      return new MemoryStorage();
    case 'supabase': {
      const { url, key, listen } = storage.supabase as { url: string; key: string; listen?: string };
      // The daemon serves conversations: their table, not the general-purpose default.
      return new SupabaseStorage({
        url,
        key,
        table: 'conversation_threads',
        ...(listen ? { doorbell: { listen: { connectionString: listen } } } : {}),
        ...log,
      });
    }
    case 'postgres': {
      const { connectionString } = storage.postgres as { connectionString: string };
      return new PostgresStorage({ connectionString, table: 'conversation_threads', ...log });
    }
    case 'sqlite':
      return new SqliteStorage({
        path: storage.storePath,
        // A power-loss-safe outbox is only as good as the store it hands writes to.
        synchronous: cache.durability === 'fsync' ? 'full' : 'normal',
      });
  }
}
