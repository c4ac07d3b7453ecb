/**
 * Test child: one instance of a fleet, a cache over the SQLite store at FLEET_STORE with its own
 * outbox in FLEET_OUTBOX_DIR, following the store's change feed (FLEET_STALENESS_MS). Driven by
 * one JSON command per stdin line, each answered by one JSON line on stdout:
 * `set`/`delete`/`append` over `keys`, `get`/`items` answering `values` by key, `flush`, `stats`,
 * and `afterBound`, which answers once `maxStalenessMs` has passed since it was received: from
 * then on no read may serve a copy older than what was flushed before the command was sent.
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { createHybridCache, SqliteStorage } from '../../src/index.js';

const stalenessMs = Number(process.env.FLEET_STALENESS_MS ?? 1_000);
const cache = await createHybridCache<unknown>({
  storage: new SqliteStorage({ path: process.env.FLEET_STORE as string }),
  outbox: { path: `${process.env.FLEET_OUTBOX_DIR}/outbox.db`, durability: 'process' },
  flush: { batchSize: 200, intervalMs: 2, concurrency: 2 },
  maxStalenessMs: stalenessMs,
  logger: pino({ level: 'warn' }, pino.destination(2)),
});

type Command =
  | { op: 'set'; keys: string[]; value: unknown }
  | { op: 'delete'; keys: string[] }
  | { op: 'append'; keys: string[]; item: unknown }
  | { op: 'get' | 'items'; keys: string[] }
  | { op: 'flush' | 'stats' | 'afterBound' };

const answer = (body: unknown) => process.stdout.write(`${JSON.stringify(body)}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as Command;
  try {
    switch (command.op) {
      case 'set':
        await Promise.all(command.keys.map((key) => cache.set(key, command.value)));
        answer({ ok: true });
        break;
      case 'delete':
        await Promise.all(command.keys.map((key) => cache.delete(key)));
        answer({ ok: true });
        break;
      case 'append':
        await Promise.all(command.keys.map((key) => cache.append(key, command.item)));
        answer({ ok: true });
        break;
      case 'get':
      case 'items': {
        const read =
          command.op === 'get' ? (k: string) => cache.get(k) : (k: string) => cache.getWithItems(k);
        const values = await Promise.all(command.keys.map(read));
        answer({ ok: true, values: Object.fromEntries(command.keys.map((k, i) => [k, values[i] ?? null])) });
        break;
      }
      case 'flush':
        await cache.flush({ timeoutMs: 10_000 });
        answer({ ok: true });
        break;
      case 'stats':
        answer({ ok: true, stats: cache.stats() });
        break;
      case 'afterBound':
        // Timers count whole milliseconds: a little past the bound, never before it.
        setTimeout(() => answer({ ok: true }), stalenessMs + 2);
        break;
    }
  } catch (error) {
    answer({ ok: false, error: String(error) });
  }
}
await cache.close();
