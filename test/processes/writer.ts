/**
 * Crash-test child: writes keys through the cache as fast as it can and prints one line per
 * acknowledged write ("<key> <seq>"), until it is killed. With STORE_DOWN=1 every store call fails;
 * with STORE_DOWN=writes the store's mark is read first and every write to it fails. The outbox is
 * in CRASH_OUTBOX_DIR when set, else beside the store in CRASH_DIR.
 */
import { pino } from 'pino';
import { createHybridCache, SqliteStorage, type Storage } from '../../src/index.js';
import { downStorage, writesDownStorage } from './down-storage.js';

const dir = process.env.CRASH_DIR as string;
const outboxDir = process.env.CRASH_OUTBOX_DIR ?? dir;
const keys = Number(process.env.CRASH_KEYS ?? 200);
const writers = Number(process.env.CRASH_WRITERS ?? 8);

const real = new SqliteStorage({ path: `${dir}/store.db` });
const writesDown = writesDownStorage(real);
const storage: Storage =
  process.env.STORE_DOWN === '1'
    ? downStorage()
    : process.env.STORE_DOWN === 'writes'
      ? writesDown.storage
      : real;
const cache = await createHybridCache<{ seq: number }>({
  storage,
  outbox: { path: `${outboxDir}/outbox.db`, durability: 'process' },
  flush: { batchSize: 50, intervalMs: 2, concurrency: 2 },
  logger: pino({ level: 'silent' }),
});
// Every write then carries a version anchored to the store: none needs a new one after a restart.
if (process.env.STORE_DOWN === 'writes') await writesDown.markRead;

let seq = 0;
const out: string[] = [];
// Lines are written synchronously so that what the parent reads was acknowledged before the kill.
const print = (line: string) => {
  out.push(line);
  if (out.length >= 16) process.stdout.write(`${out.splice(0).join('\n')}\n`);
};
process.stdout.write('ready\n');
await Promise.all(
  Array.from({ length: writers }, async () => {
    for (;;) {
      const n = ++seq;
      // `k*` keys are only ever set, so a restart must show exactly the last acknowledged value or a
      // newer one; every 7th write goes to a `d*` key, which alternates between set and delete.
      const mixed = n % 7 === 0;
      const key = mixed ? `d${(n / 7) % 50}` : `k${n % keys}`;
      if (mixed && Math.floor(n / 350) % 2 === 1) {
        await cache.delete(key);
        print(`${key} ${n} deleted`);
      } else {
        await cache.set(key, { seq: n });
        print(`${key} ${n}`);
      }
      if (out.length > 0 && n % 16 === 0) process.stdout.write(`${out.splice(0).join('\n')}\n`);
    }
  }),
);
