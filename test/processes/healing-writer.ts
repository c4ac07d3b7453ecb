/**
 * Crash-test child: with the store down, acknowledges HEAL_WRITES writes (`k<i>` = { seq: i }) and
 * prints "acked <n>", then waits. When the test has deleted its outbox and the cache has written a
 * new one, it prints "healed <writes re-persisted>", acknowledges AFTER_WRITES more (`after<i>`),
 * prints "after <n>", and waits to be killed. Lines go to a pipe synchronously, in order.
 */
import { pino } from 'pino';
import { createHybridCache } from '../../src/index.js';
import { downStorage } from './down-storage.js';

const dir = process.env.CRASH_DIR as string;
const writes = Number(process.env.HEAL_WRITES ?? 203);
const afterWrites = Number(process.env.AFTER_WRITES ?? 50);
const cache = await createHybridCache<{ seq: number }>({
  storage: downStorage(),
  outbox: { path: `${dir}/outbox.db`, durability: 'process' },
  logger: pino({ level: 'silent' }),
});
// The cache's timers do not keep a process alive; this one waits for the kill.
setInterval(() => {}, 60_000);

cache.on('outboxHealed', ({ writes: healed }) => {
  process.stdout.write(`healed ${healed}\n`);
  void (async () => {
    for (let i = 0; i < afterWrites; i++) await cache.set(`after${i}`, { seq: i });
    process.stdout.write(`after ${afterWrites}\n`);
  })();
});
for (let i = 0; i < writes; i++) await cache.set(`k${i}`, { seq: i });
process.stdout.write(`acked ${writes}\n`);
