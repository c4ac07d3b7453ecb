/**
 * Child process for the clock-behind tests: opens a cache on a SQLite store, does one blind write
 * (`set` or `delete`, no read first), flushes, and prints what it then reads and its stats as JSON.
 * Env: BLIND_STORE (store file), BLIND_OUTBOX (outbox file, or empty for durability `none`),
 * BLIND_OP (`set` | `delete` | `append`), BLIND_KEY, BLIND_VALUE (JSON, for `set` and `append`).
 */
import { pino } from 'pino';
import { createHybridCache, SqliteStorage } from '../../src/index.js';

const env = (name: string) => process.env[name] ?? '';
const storage = new SqliteStorage({ path: env('BLIND_STORE') });
const outboxPath = env('BLIND_OUTBOX');
const cache = await createHybridCache<unknown>({
  storage,
  outbox: outboxPath ? { path: outboxPath, durability: 'process' } : { durability: 'none' },
  logger: pino({ level: 'silent' }),
});
const key = env('BLIND_KEY');
if (env('BLIND_OP') === 'delete') await cache.delete(key);
else if (env('BLIND_OP') === 'append') await cache.append(key, JSON.parse(env('BLIND_VALUE')));
else await cache.set(key, JSON.parse(env('BLIND_VALUE')));
await cache.flush({ timeoutMs: 20_000 });
const afterFlush = (await cache.getWithItems(key)) ?? null;
const { superseded, pending } = cache.stats();
await cache.close();
await storage.close();
process.stdout.write(`${JSON.stringify({ afterFlush, superseded, pending, now: Date.now() })}\n`);
