/**
 * Crash-test child: with the store down, writes through the cache and prints "ack <key> <seq>" per
 * acknowledged write (the value is { seq }); after DELETE_AFTER acknowledgements it deletes its own
 * outbox (and -wal) at a macrotask boundary, prints "deleted", and keeps writing, printing
 * "refused <code>" per rejected write and "healed <writes>" when a new outbox was written, until it
 * is killed. Lines go to a pipe synchronously, in order.
 */
import { unlinkSync } from 'node:fs';
import { pino } from 'pino';
import { createHybridCache } from '../../src/index.js';
import { downStorage } from './down-storage.js';

const dir = process.env.CRASH_DIR as string;
const deleteAfter = Number(process.env.DELETE_AFTER ?? 200);
const down = downStorage();
const outboxPath = `${dir}/outbox.db`;
const cache = await createHybridCache<{ seq: number }>({
  storage: down,
  outbox: { path: outboxPath, durability: 'process' },
  logger: pino({ level: 'silent' }),
});
cache.on('outboxHealed', ({ writes }) => process.stdout.write(`healed ${writes}\n`));

let acked = 0;
let seq = 0;
const write = async (): Promise<void> => {
  for (;;) {
    const n = ++seq;
    try {
      await cache.set(`k${n % 500}`, { seq: n });
      process.stdout.write(`ack k${n % 500} ${n}\n`);
      if (++acked === deleteAfter) {
        // After every continuation of writes already acknowledged has printed.
        setTimeout(() => {
          unlinkSync(outboxPath);
          unlinkSync(`${outboxPath}-wal`);
          process.stdout.write('deleted\n');
        }, 0);
      }
    } catch (error) {
      process.stdout.write(`refused ${(error as { code?: string }).code}\n`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    if (n % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
};
await Promise.all(Array.from({ length: 8 }, write));
