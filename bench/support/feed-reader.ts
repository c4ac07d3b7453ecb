/**
 * Child process of the bench's convergence case: a second instance, a cache over the shared store
 * with the default change feed (SQLite file at FEED_SQLITE_PATH, SupabaseStorage through the
 * gateway at FEED_SUPABASE_URL with FEED_SUPABASE_KEY, or PostgresStorage with its doorbell over
 * the connection string FEED_POSTGRES); FEED_POLL_MS and FEED_MAX_STALENESS_MS change the feed's
 * settings. Driven by one JSON command per stdin line
 * (test/support/line-child.ts), each answered by one JSON line on stdout:
 * - `read` `keys`: reads them (they are cached, clean, from then on);
 * - `arm` `key` `n`: starts watching for the key to serve `{ n }`, answers at once;
 * - `wait`: answers once the armed key served `{ n }`, with `servedAtNs`, the monotonic clock
 *   (process.hrtime, the same clock in every process on the machine) when that `get` resolved, and
 *   `via`: `event` (a `get` made on the cache's 'changes' event) or `poll` (a `get` made every ms),
 *   and `eventAtNs`, when the 'changes' event naming the key arrived (empty if none did);
 * - `stats`: the cache's stats.
 */
import { createInterface } from 'node:readline';
import pg from 'pg';
import type { Storage } from '../../src/index.js';
import { SqliteStorage } from '../../src/index.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import { SupabaseStorage } from '../../src/storage/supabase/supabase-storage.js';
import { benchCache } from '../lib/case.js';

const env = process.env;
let storage: Storage;
let pool: pg.Pool | undefined;
if (env.FEED_SQLITE_PATH) storage = new SqliteStorage({ path: env.FEED_SQLITE_PATH });
else if (env.FEED_POSTGRES) {
  // A PostgresStorage (doorbell on, its default) over a pool of its own.
  // From a connection string: see connectionString in cases/postgres.ts.
  pool = new pg.Pool({ connectionString: env.FEED_POSTGRES, max: 4 });
  pool.on('error', () => {});
  storage = new PostgresStorage({ pool, table: 'conversation_threads' });
} else {
  storage = new SupabaseStorage({
    url: env.FEED_SUPABASE_URL as string,
    key: env.FEED_SUPABASE_KEY as string,
    table: 'conversation_threads',
  });
}
// FEED_POLL_MS / FEED_MAX_STALENESS_MS: feed settings other than the defaults.
const cache = await benchCache({
  storage,
  ...(env.FEED_POLL_MS ? { feed: { pollIntervalMs: Number(env.FEED_POLL_MS) } } : {}),
  ...(env.FEED_MAX_STALENESS_MS ? { maxStalenessMs: Number(env.FEED_MAX_STALENESS_MS) } : {}),
});

interface Watch {
  key: string;
  n: number;
  servedAtNs?: bigint;
  /** When the first 'changes' event naming the key arrived (the follower had dropped the copy). */
  eventAtNs?: bigint;
  via?: 'event' | 'poll';
  answer?: () => void;
}
let watch: Watch | undefined;
let ticker: NodeJS.Timeout | undefined;
const answer = (body: unknown) => process.stdout.write(`${JSON.stringify(body)}\n`);

async function check(w: Watch, via: 'event' | 'poll'): Promise<void> {
  if (w.servedAtNs !== undefined) return;
  const value = (await cache.get(w.key)) as { n?: number } | undefined;
  if (w.servedAtNs !== undefined || value?.n !== w.n) return;
  w.servedAtNs = process.hrtime.bigint();
  w.via = via;
  clearInterval(ticker);
  w.answer?.();
}

cache.on('changes', ({ changes }) => {
  const w = watch;
  if (w && changes.some((change) => change.key === w.key)) {
    w.eventAtNs ??= process.hrtime.bigint();
    void check(w, 'event');
  }
});

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as
    | { op: 'read'; keys: string[] }
    | { op: 'arm'; key: string; n: number }
    | { op: 'wait' | 'stats' };
  try {
    switch (command.op) {
      case 'read':
        await Promise.all(command.keys.map((key) => cache.get(key)));
        answer({ ok: true });
        break;
      case 'arm': {
        const w: Watch = { key: command.key, n: command.n };
        watch = w;
        clearInterval(ticker);
        ticker = setInterval(() => void check(w, 'poll'), 1);
        answer({ ok: true });
        break;
      }
      case 'wait': {
        const w = watch as Watch;
        if (w.servedAtNs === undefined) await new Promise<void>((resolve) => (w.answer = resolve));
        answer({
          ok: true,
          servedAtNs: String(w.servedAtNs),
          eventAtNs: String(w.eventAtNs ?? ''),
          via: w.via,
        });
        break;
      }
      case 'stats':
        answer({ ok: true, stats: cache.stats() });
        break;
    }
  } catch (error) {
    answer({ ok: false, error: String(error) });
  }
}
clearInterval(ticker);
await cache.close({ timeoutMs: 1 });
await storage.close?.();
await pool?.end();
