import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHybridCache, SqliteStorage, StorageUnavailableError } from 'hybrid-cache';
import { pino } from 'pino';

interface Conversation {
  title: string;
  turns: string[];
}

const dir = mkdtempSync(join(tmpdir(), 'hybrid-cache-example-'));
const logger = pino({ level: 'warn' });

// An embedded SQLite store; for Supabase, `new SupabaseStorage({ url, key })` from 'hybrid-cache/supabase'.
const storage = new SqliteStorage({ path: join(dir, 'store.db') });
const cache = await createHybridCache<Conversation>({
  storage,
  outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
  maxEntries: 10_000,
  defaultTtlMs: 24 * 3_600_000,
  logger,
});

cache.on('health', ({ from, to }) => logger.warn({ from, to }, 'store health changed'));
cache.on('deadLetter', (letter) =>
  logger.error({ key: letter.key, error: letter.error }, 'write dead-lettered'),
);

// Resolves once the write is in memory and in the outbox: it survives kill -9 from here on.
await cache.set('thread:1', { title: 'hello', turns: ['hi there'] });
const thread = await cache.get('thread:1'); // served from memory
console.log(thread?.turns.length); // 1

try {
  await cache.get('thread:unknown'); // a miss reads through to the store once
} catch (error) {
  if (error instanceof StorageUnavailableError) logger.warn('store unreachable: cannot tell if it exists');
}

await cache.flush({ timeoutMs: 5_000 }); // optional: wait until the store has everything
console.log(cache.stats().pending); // 0

const { pending } = await cache.close({ timeoutMs: 5_000 }); // drains; leftovers stay in the outbox
await storage.close();
console.log(`closed with ${pending} pending`); // closed with 0 pending
