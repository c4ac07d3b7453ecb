/**
 * `node --import tsx --expose-gc bench/apply-lookup.ts [--batches=300]`: the apply function before
 * and after `*_apply_write_time_lookup.sql`, in one run on one server. Two databases on the same
 * embedded PostgreSQL: one migrated up to the migration before it, one with every migration. The
 * same batches of 200 writes (~1 KB values) go to both, calls alternating, one at a time on one
 * connection each, so the time is the server's work on the call plus one round trip:
 *
 * - updates: every key of the batch is already stored (the path the migration changes: each
 *   updated row looks its write's time up by key instead of scanning the batch);
 * - inserts: every key is new (no update, so the lookup is never made; what it costs to build).
 *
 * Against the physical limit on each database (the same keys as one 200-row `INSERT … ON
 * CONFLICT`, bench/lib/physical-limit.ts). Results go to stdout and bench/results/apply-lookup.md.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate, migrationFiles } from '../src/storage/postgres/migrate.js';
import { writeCalls } from '../src/storage/sql-functions/table-functions.js';
import { put } from '../src/testing/writes.js';
import { connectionUrl, createDatabase } from '../test/support/plain-postgres.js';
import { PostgresCluster } from '../test/support/postgres.js';
import { flushValues } from './lib/data.js';
import { collectGarbage, median } from './lib/measure.js';
import { physicalLimitSql } from './lib/physical-limit.js';

const { values: args } = parseArgs({ options: { batches: { type: 'string', default: '300' } } });
const BATCHES = Number(args.batches);
const BATCH = 200;
const MIGRATION = '20261207120000_apply_write_time_lookup.sql';

type Side = 'before' | 'after';
type Path = 'updates' | 'inserts';
type Call = 'apply' | 'limit';

const values = flushValues();
const valueTexts = values.map((v) => JSON.stringify(v));
const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
let version = Date.now() * 1024;

/** The keys of batch `b`: the same few thousand for updates, new ones for inserts. */
function keysOf(path: Path, call: Call, b: number): string[] {
  return Array.from({ length: BATCH }, (_, i) =>
    path === 'updates' ? `u-${call}:${((b * BATCH + i) % 2_000).toString()}` : `i-${call}:${b}:${i}`,
  );
}

async function callOnce(client: pg.Client, path: Path, call: Call, b: number): Promise<number> {
  const keys = keysOf(path, call, b);
  let sql: string;
  let params: unknown[];
  if (call === 'apply') {
    const { calls } = writeCalls(
      keys.map((key, i) => put(key, ++version, values[i & 255])),
      'thread_id',
    );
    sql = `select count(*) filter (where outcome = 'applied')::int as n from public.apply_conversation_threads($1::jsonb)`;
    params = [JSON.stringify(calls[0]?.args.p_writes)];
  } else {
    sql = `with w as (${physicalLimitSql()} returning 1) select count(*)::int as n from w`;
    params = [keys, keys.map((_, i) => valueTexts[i & 255]), expiresAt, keys.map(() => ++version)];
  }
  const started = performance.now();
  const result = await client.query(sql, params);
  const elapsed = performance.now() - started;
  if ((result.rows[0] as { n: number }).n !== BATCH)
    throw new Error(`${call} ${path}: not every write applied`);
  return elapsed;
}

const cluster = await PostgresCluster.create();
const earlierDir = mkdtempSync(join(tmpdir(), 'apply-lookup-'));
try {
  const files = migrationFiles();
  if (!files.some((file) => file.file === MIGRATION)) throw new Error(`${MIGRATION} is missing`);
  for (const file of files) if (file.file < MIGRATION) writeFileSync(join(earlierDir, file.file), file.sql);
  const clients = {} as Record<Side, pg.Client>;
  for (const side of ['before', 'after'] as const) {
    const url = connectionUrl(await createDatabase(cluster.info, `apply_lookup_${side}`));
    await migrate({
      connectionString: url,
      max: 1,
      ...(side === 'before' ? { migrationsDir: earlierDir } : {}),
    });
    clients[side] = new pg.Client({ connectionString: url });
    await clients[side].connect();
  }

  const times = new Map<string, number[]>();
  const record = (name: string, ms: number) => times.set(name, [...(times.get(name) ?? []), ms]);
  for (const path of ['updates', 'inserts'] as const) {
    // Updates need their keys stored first; both paths warm the server's caches.
    for (let b = 0; b < 10; b++) {
      for (const side of ['before', 'after'] as const) {
        for (const call of ['apply', 'limit'] as const) await callOnce(clients[side], path, call, b);
      }
    }
    collectGarbage();
    for (let b = 10; b < BATCHES + 10; b++) {
      // The order rotates, so drift and other load hit every variant alike.
      const order = (['before', 'after'] as const).flatMap((side) =>
        (['apply', 'limit'] as const).map((call) => [side, call] as const),
      );
      for (let i = 0; i < order.length; i++) {
        const [side, call] = order[(i + b) % order.length] as (typeof order)[number];
        record(`${path} ${side} ${call}`, await callOnce(clients[side], path, call, b));
      }
    }
  }
  for (const client of Object.values(clients)) await client.end();

  const server = await cluster.connect();
  const serverVersion = (await server.query('show server_version')).rows[0]?.server_version as string;
  await server.end();
  const lines = [
    '# The apply function before and after the write-time lookup',
    '',
    `${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, PostgreSQL ${serverVersion} (embedded, test settings), same machine`,
    `\`node --import tsx --expose-gc bench/apply-lookup.ts --batches=${BATCHES}\`: ${BATCHES} calls of ${BATCH} writes (~1 KB values) per variant, one at a time, variants interleaved`,
    '',
    '| path | database | apply, p50 | 200-row limit, p50 | apply / limit |',
    '|---|---|---:|---:|---:|',
  ];
  for (const path of ['updates', 'inserts'] as const) {
    for (const side of ['before', 'after'] as const) {
      const apply = median(times.get(`${path} ${side} apply`) ?? []);
      const limit = median(times.get(`${path} ${side} limit`) ?? []);
      const label = side === 'before' ? 'migrated up to the one before' : `with ${MIGRATION}`;
      lines.push(
        `| ${path} | ${label} | ${apply.toFixed(2)} ms | ${limit.toFixed(2)} ms | ${(apply / limit).toFixed(2)}× |`,
      );
    }
    const before = median(times.get(`${path} before apply`) ?? []);
    const after = median(times.get(`${path} after apply`) ?? []);
    lines.push(`| ${path} | after / before | ${(after / before).toFixed(2)}× | | |`);
  }
  const report = `${lines.join('\n')}\n`;
  process.stdout.write(report);
  writeFileSync(new URL('results/apply-lookup.md', import.meta.url), report);
} finally {
  rmSync(earlierDir, { recursive: true, force: true });
  await cluster.destroy();
}
