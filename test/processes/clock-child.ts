/**
 * Test child: a cache over the SQLite store at CLOCK_STORE with its own outbox in CLOCK_OUTBOX_DIR,
 * driven by JSON commands on stdin, one per line, each answered by one JSON line on stdout:
 * `{ op: 'clock', offsetMs }` moves this process's wall clock (Date.now) by offsetMs from the real
 * one; `set`, `flush` (with a 5 s timeout) and `stats` do what they say. Error logs go to stderr as
 * JSON lines.
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { createHybridCache, SqliteStorage } from '../../src/index.js';

const realNow = Date.now;
let offsetMs = 0;
Date.now = () => realNow() + offsetMs;

const cache = await createHybridCache<string>({
  storage: new SqliteStorage({ path: process.env.CLOCK_STORE as string }),
  outbox: { path: `${process.env.CLOCK_OUTBOX_DIR}/outbox.db`, durability: 'process' },
  flush: { batchSize: 50, intervalMs: 2, concurrency: 2 },
  logger: pino({ level: 'error' }, pino.destination(2)),
});

type Command =
  | { op: 'clock'; offsetMs: number }
  | { op: 'set'; key: string; value: string }
  | { op: 'flush' }
  | { op: 'stats' };

const answer = (body: unknown) => process.stdout.write(`${JSON.stringify(body)}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as Command;
  try {
    switch (command.op) {
      case 'clock':
        offsetMs = command.offsetMs;
        answer({ ok: true });
        break;
      case 'set':
        await cache.set(command.key, command.value);
        answer({ ok: true });
        break;
      case 'flush':
        await cache.flush({ timeoutMs: 5_000 });
        answer({ ok: true });
        break;
      case 'stats':
        answer({ ok: true, stats: cache.stats() });
        break;
    }
  } catch (error) {
    answer({ ok: false, error: String(error) });
  }
}
await cache.close();
