/**
 * Crash-test verifier: opens a cache on the files a killed writer left, reads the given keys
 * (served from the replayed outbox or the store), flushes, and prints the results as JSON. The outbox
 * is in CRASH_OUTBOX_DIR when set, else beside the store in CRASH_DIR.
 */
import { pino } from 'pino';
import { createHybridCache, SqliteStorage } from '../../src/index.js';

const dir = process.env.CRASH_DIR as string;
const outboxDir = process.env.CRASH_OUTBOX_DIR ?? dir;
const keys = JSON.parse(process.env.CRASH_READ_KEYS as string) as string[];
const storage = new SqliteStorage({ path: `${dir}/store.db` });
const cache = await createHybridCache<{ seq: number }>({
  storage,
  outbox: { path: `${outboxDir}/outbox.db`, durability: 'process' },
  logger: pino({ level: 'silent' }),
});
const replayed = cache.stats().pending;
const values: Record<string, number | null> = {};
for (const key of keys) values[key] = (await cache.get(key))?.seq ?? null;
await cache.flush({ timeoutMs: 20_000 });
const { pending } = await cache.close();
await storage.close();
process.stdout.write(`${JSON.stringify({ replayed, values, pending })}\n`);
