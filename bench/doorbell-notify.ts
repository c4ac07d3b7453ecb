/**
 * `node --import tsx bench/doorbell-notify.ts [--seconds=3] [--rounds=3]`: what ringing the
 * doorbell (NOTIFY) inside the write transaction costs flush throughput, against ringing it after
 * the write committed (what PostgresStorage does) and not ringing at all, in one run on one server.
 *
 * NOTIFY queued in a transaction takes a cluster-wide lock at commit and holds it until the commit
 * is done, so concurrent committing writers queue behind each other. Each figure is concurrent
 * writers applying batches of 200 distinct keys (~200-byte values) through the table's write
 * function, two listeners LISTENing (a queued notification is only written when someone listens).
 * Modes are interleaved round by round so drift hits them alike. Results go to stdout and
 * bench/results/doorbell-notify.md. The server is the test suite's embedded PostgreSQL; it runs
 * with `fsync` turned on (a reload) and `synchronous_commit=on`, as a durable server does, then
 * with both off (the test settings): the lock is held while the commit flushes, so what it costs
 * depends on how long that flush takes.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../src/storage/postgres/migrate.js';
import { PostgresStorage } from '../src/storage/postgres/postgres-storage.js';
import { type WriteCall, writeCalls } from '../src/storage/sql-functions/table-functions.js';
import { put } from '../src/testing/writes.js';
import { connectionUrl, createDatabase } from '../test/support/plain-postgres.js';
import { PostgresCluster } from '../test/support/postgres.js';

const { values: args } = parseArgs({
  options: { seconds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '3' } },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const BATCH = 200;
const CHANNEL = 'hybrid_cache';

type Mode = 'none' | 'in-transaction' | 'after-commit' | 'PostgresStorage.apply + after-commit';
const MODES: Mode[] = ['none', 'in-transaction', 'after-commit', 'PostgresStorage.apply + after-commit'];

const cluster = await PostgresCluster.create();
try {
  const info = await createDatabase(cluster.info, 'bench_notify');
  const url = connectionUrl(info);
  await migrate({ connectionString: url, max: 1 });
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  // The same write function, wrapped, with and without the NOTIFY in its transaction: the
  // wrapper's own cost is the same for both.
  await setup.query(`
    create function bench_write(p_writes jsonb, p_appends jsonb, p_notify boolean)
    returns table (idx integer, outcome text, stored_version bigint) language plpgsql as $$
    begin
      return query select * from public.hybrid_cache_write(p_writes, p_appends);
      if p_notify then perform pg_notify('${CHANNEL}', 'hybrid_cache_entries'); end if;
    end $$`);
  const version = (await setup.query<{ server_version: string }>('show server_version')).rows[0]
    ?.server_version;
  await setup.end();
  const listeners = await Promise.all(
    [0, 1].map(async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      let heard = 0;
      client.on('notification', () => heard++);
      await client.query(`listen ${CHANNEL}`);
      return { client, heard: () => heard };
    }),
  );

  let version0 = Date.now() * 1024;
  const batchOf = (worker: number, round: number) => {
    const writes = Array.from({ length: BATCH }, (_, i) =>
      put(`w${worker}:${i}`, ++version0, { round, i, pad: 'x'.repeat(160) }),
    );
    return writes;
  };

  async function durable(on: boolean): Promise<void> {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`alter system set fsync = ${on ? 'on' : 'off'}`);
    await admin.query('select pg_reload_conf()');
    await admin.end();
  }

  async function run(mode: Mode, writers: number, synchronousCommit: boolean): Promise<number> {
    const pool = new pg.Pool({
      connectionString: url,
      max: writers,
      options: `-c synchronous_commit=${synchronousCommit ? 'on' : 'off'}`,
    });
    pool.on('error', () => {});
    // Its own ring off: the bench sends the NOTIFY itself, as in the other modes.
    const storage = new PostgresStorage({ pool, doorbell: false });
    let batches = 0;
    const deadline = performance.now() + SECONDS * 1000;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: writers }, async (_, worker) => {
        for (let round = 0; performance.now() < deadline; round++) {
          const writes = batchOf(worker, round);
          if (mode === 'PostgresStorage.apply + after-commit') {
            await storage.apply(writes);
            await pool.query('select pg_notify($1, $2)', [CHANNEL, 'hybrid_cache_entries']);
          } else {
            const [{ args: a }] = writeCalls(writes, 'key').calls as [WriteCall]; // values only: one call
            await pool.query('select * from bench_write($1::jsonb, $2::jsonb, $3)', [
              JSON.stringify(a.p_writes),
              JSON.stringify(a.p_appends),
              mode === 'in-transaction',
            ]);
            if (mode === 'after-commit') {
              await pool.query('select pg_notify($1, $2)', [CHANNEL, 'hybrid_cache_entries']);
            }
          }
          batches++;
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    await pool.end();
    return (batches * BATCH) / elapsed;
  }

  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  say('# Doorbell: NOTIFY in the write transaction vs after it commits');
  say('');
  say(
    `${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, PostgreSQL ${version ?? '?'} (embedded)`,
  );
  say(
    `\`node --import tsx bench/doorbell-notify.ts --seconds=${SECONDS} --rounds=${ROUNDS}\`: writes/s (median of ${ROUNDS} rounds of ${SECONDS} s), batches of ${BATCH} distinct keys, 2 listeners`,
  );
  say('');
  say(
    '| writers | fsync, synchronous_commit | no NOTIFY | NOTIFY in transaction | NOTIFY after commit | PostgresStorage.apply + NOTIFY after | in-transaction cost |',
  );
  say('|---|---|---|---|---|---|---|');
  for (const synchronousCommit of [true, false]) {
    await durable(synchronousCommit);
    for (const writers of [4, 8]) {
      const rates = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
      for (let round = 0; round < ROUNDS; round++) {
        for (const mode of MODES) rates.get(mode)?.push(await run(mode, writers, synchronousCommit));
      }
      const med = (mode: Mode) => median(rates.get(mode) ?? []);
      const cost = 1 - med('in-transaction') / med('none');
      say(
        `| ${writers} | ${synchronousCommit ? 'on' : 'off'} | ${MODES.map((m) => Math.round(med(m)).toLocaleString('en')).join(' | ')} | ${(cost * 100).toFixed(1)}% |`,
      );
    }
  }
  say('');
  say(`notifications heard per listener: ${listeners.map((l) => l.heard()).join(', ')}`);
  await Promise.all(listeners.map((l) => l.client.end()));
  writeFileSync(join(import.meta.dirname, 'results', 'doorbell-notify.md'), `${lines.join('\n')}\n`);
} finally {
  await cluster.destroy();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
