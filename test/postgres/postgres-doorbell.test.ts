import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { HybridCache } from '../../src/index.js';
import { PostgresDoorbell } from '../../src/storage/postgres/doorbell.js';
import { migrate } from '../../src/storage/postgres/migrate.js';
import { PostgresStorage, type PostgresStorageOptions } from '../../src/storage/postgres/postgres-storage.js';
import { put } from '../../src/testing/writes.js';
import { slowPollingCache } from '../support/doorbell-cache.js';
import { connectionUrl, createDatabase } from '../support/plain-postgres.js';
import { freePort, PostgresCluster } from '../support/postgres.js';

// A cluster of its own: the feed's xmin is cluster-wide, so a transaction another test file holds
// open in the shared cluster would hold back the changes these caches wait for.
let cluster: PostgresCluster;
let url: string;
beforeAll(async () => {
  cluster = await PostgresCluster.create();
  url = connectionUrl(await createDatabase(cluster.info, 'doorbell'));
  await migrate({ connectionString: url, max: 1 });
});
afterAll(() => cluster?.destroy());

const opened: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

/** A pino logger whose lines are kept, with a promise for the first line matching. */
function recordingLogger() {
  const lines: string[] = [];
  const waiting: Array<[RegExp, (line: string) => void]> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      const line = String(chunk);
      lines.push(line);
      for (const [pattern, resolve] of waiting) if (pattern.test(line)) resolve(line);
      done();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  const line = (pattern: RegExp) =>
    new Promise<string>((resolve) => {
      const found = lines.find((l) => pattern.test(l));
      if (found) resolve(found);
      else waiting.push([pattern, resolve]);
    });
  return { logger, lines, line };
}

function storage(over: Partial<PostgresStorageOptions> = {}): PostgresStorage {
  const s = new PostgresStorage({
    connectionString: url,
    logger: pino({ level: 'silent' }),
    ...over,
  } as PostgresStorageOptions);
  opened.push(s);
  return s;
}

/** Subscribes to a store's doorbell; `after(n)` resolves once it rang more than `n` times. */
function bell(store: PostgresStorage) {
  let rings = 0;
  const waiting: Array<[number, () => void]> = [];
  const unsubscribe = store.onChange(() => {
    rings++;
    for (const [n, resolve] of waiting) if (rings > n) resolve();
  });
  opened.push({ close: async () => unsubscribe() });
  return {
    rings: () => rings,
    after: (n: number) =>
      new Promise<void>((resolve) => (rings > n ? resolve() : waiting.push([n, resolve]))),
  };
}

/** Caches only the doorbell makes read the feed sooner (see slowPollingCache). */
async function cache(store: PostgresStorage): Promise<HybridCache<number>> {
  const c = await slowPollingCache(store);
  opened.push(c);
  return c;
}

const listening = (c: HybridCache<number>) =>
  vi.waitFor(() => expect(c.stats().doorbell).toBe('listening'), { timeout: 10_000, interval: 20 });

let version = Date.now() * 1024;

describe('PostgresStorage doorbell', () => {
  it('rings once when it starts listening, then after another connection applies a write', async () => {
    const listener = storage();
    const writer = storage();
    expect(listener.doorbellState()).toBe('off');
    const b = bell(listener);
    await b.after(0);
    expect(listener.doorbellState()).toBe('listening');
    const before = b.rings();
    expect(await writer.apply([put(`k:${randomUUID()}`, ++version, 1)])).toEqual([{ status: 'applied' }]);
    await b.after(before);
    expect(listener.doorbellStats()).toMatchObject({ state: 'listening', reconnects: 0 });
    expect(listener.doorbellStats()?.lastHeartbeatAt).toBeTypeOf('number');
  });

  it('listens over a pool given with separate connection fields (its password is not enumerable)', async () => {
    const parsed = new URL(url);
    const pool = new pg.Pool({
      host: parsed.hostname,
      port: Number(parsed.port),
      user: decodeURIComponent(parsed.username),
      password: decodeURIComponent(parsed.password),
      database: parsed.pathname.slice(1),
      max: 2,
    });
    opened.push({ close: () => pool.end() });
    const listener = storage({ pool, connectionString: undefined } as Partial<PostgresStorageOptions>);
    const b = bell(listener);
    await b.after(0);
    expect(listener.doorbellState()).toBe('listening');
  });

  it('rings for its own table only', async () => {
    const listener = storage({ table: 'conversation_threads' });
    const b = bell(listener);
    await b.after(0);
    // One session's notifications arrive in the order they committed: had the other table's rung,
    // the count would be 3 when its own table's ring arrives.
    const raw = await cluster.connect(new URL(url).pathname.slice(1));
    try {
      await raw.query(`select pg_notify('hybrid_cache', 'public.hybrid_cache_entries')`);
      await raw.query(`select pg_notify('hybrid_cache', 'other_schema.conversation_threads')`);
      await raw.query(`select pg_notify('hybrid_cache', 'public.conversation_threads')`);
    } finally {
      await raw.end();
    }
    await b.after(1);
    expect(b.rings()).toBe(2);
  });

  it('a second cache serves the new value once the writer flushed, without waiting for its poll', async () => {
    const writer = await cache(storage());
    const reader = await cache(storage());
    const k = `converge:${randomUUID()}`;
    await writer.set(k, 1);
    await writer.flush({ timeoutMs: 5_000 });
    expect(await reader.get(k)).toBe(1);
    await listening(reader);
    await writer.set(k, 2);
    await writer.flush({ timeoutMs: 5_000 });
    // The reader polls once a minute and vouches for two: only the doorbell can make it read 2 now.
    await vi.waitFor(async () => expect(await reader.get(k)).toBe(2), { timeout: 10_000, interval: 20 });
    expect(reader.stats().feedState).toBe('following');
  });

  it('reconnects with backoff when its connection is terminated, catches up, and never serves an older value', async () => {
    const readerStore = storage({ doorbell: { backoff: { baseMs: 500, maxMs: 2_000 } } });
    const writer = await cache(storage());
    const reader = await cache(readerStore);
    const k = `cut:${randomUUID()}`;
    await writer.set(k, 0);
    await writer.flush({ timeoutMs: 5_000 });
    expect(await reader.get(k)).toBe(0);
    await listening(reader);

    // The writer keeps writing and flushing; the reader keeps reading, never going backwards.
    let writing = true;
    let written = 0;
    const served: number[] = [];
    const writes = (async () => {
      while (writing) {
        await writer.set(k, ++written);
        await writer.flush({ timeoutMs: 5_000 });
      }
    })();
    const reads = (async () => {
      while (writing) {
        served.push((await reader.get(k)) ?? -1);
        // Memory hits resolve without I/O: let the writer and the doorbell run between reads.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();

    const admin = await cluster.connect();
    try {
      const { rowCount } = await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'hybrid-cache doorbell'`,
      );
      expect(rowCount).toBeGreaterThanOrEqual(2);
    } finally {
      await admin.end();
    }
    await vi.waitFor(
      () => {
        expect(readerStore.doorbellState()).toBe('listening');
        expect(readerStore.doorbellStats()?.reconnects).toBeGreaterThanOrEqual(1);
      },
      { timeout: 10_000, interval: 20 },
    );
    writing = false;
    await Promise.all([writes, reads]);
    // Everything written reaches the reader through the doorbell (the poll is a minute away).
    await vi.waitFor(async () => expect(await reader.get(k)).toBe(written), {
      timeout: 10_000,
      interval: 20,
    });
    expect(written).toBeGreaterThan(0);
    expect(served.length).toBeGreaterThan(0);
    for (let i = 1; i < served.length; i++) expect(served[i]).toBeGreaterThanOrEqual(served[i - 1] as number);
  });

  it('reports a listener that never hears itself (a transaction-mode pooler), loudly and without the password', async () => {
    const { logger, lines, line } = recordingLogger();
    const info = cluster.info;
    // As through a transaction-mode pooler: LISTEN is accepted, but the NOTIFY runs where nobody
    // listens, so the connection never hears itself.
    const doorbell = new PostgresDoorbell({
      client: () => {
        const client = new pg.Client({ connectionString: url });
        const query = client.query.bind(client) as (text: string, values?: unknown[]) => Promise<unknown>;
        (client as unknown as { query: typeof query }).query = (text, values) =>
          query(text, text.startsWith('SELECT pg_notify') && values ? ['nobody_listens', values[1]] : values);
        return client;
      },
      topic: 'public.hybrid_cache_entries',
      redact: (text) => text.replaceAll(info.password, '[redacted]'),
      logger,
      probeTimeoutMs: 300,
      backoff: { baseMs: 100, maxMs: 200 },
    });
    opened.push(doorbell);
    let rings = 0;
    doorbell.subscribe(() => rings++);
    const error = await line(/transaction-mode pooler/);
    expect(JSON.parse(error)).toMatchObject({ level: 50 });
    expect(doorbell.state).toBe('broken');
    expect(rings).toBe(0);
    await doorbell.close();
    expect(doorbell.state).toBe('off');
    expect(lines.join('')).not.toContain(info.password);
  });

  it('notices a listener that went deaf (its heartbeat not heard back), reconnects, and rings again', async () => {
    const { logger, line } = recordingLogger();
    // Each connection hears its first notification to itself, then nothing: silently dead.
    const doorbell = new PostgresDoorbell({
      client: () => {
        const client = new pg.Client({ connectionString: url });
        const query = client.query.bind(client) as (text: string, values?: unknown[]) => Promise<unknown>;
        let probes = 0;
        (client as unknown as { query: typeof query }).query = (text, values) => {
          const deaf = text.startsWith('SELECT pg_notify') && values && ++probes > 1;
          return query(text, deaf ? ['nobody_listens', values[1]] : values);
        };
        return client;
      },
      topic: 'public.hybrid_cache_entries',
      redact: (text) => text,
      logger,
      heartbeatMs: 50,
      probeTimeoutMs: 200,
      backoff: { baseMs: 10, maxMs: 20 },
    });
    opened.push(doorbell);
    let rings = 0;
    const second = new Promise<void>((resolve) =>
      doorbell.subscribe(() => {
        if (++rings === 2) resolve();
      }),
    );
    await line(/doorbell heartbeat not heard back: reconnecting/);
    // Every connection rings once: the follower reads what it may have missed meanwhile.
    await second;
    expect(doorbell.stats().reconnects).toBeGreaterThanOrEqual(1);
  });

  it('says why it cannot connect and keeps trying, broken on refused credentials, never logging the password', async () => {
    const { logger, lines, line } = recordingLogger();
    const password = `pw-${randomUUID()}`;
    const unreachable = `postgres://postgres:${password}@127.0.0.1:${await freePort()}/postgres`;
    const store = storage({
      connectionString: unreachable,
      logger,
      doorbell: { backoff: { baseMs: 50, maxMs: 100 } },
    });
    bell(store);
    await line(/doorbell connection failed or lost/);
    await vi.waitFor(() => expect(store.doorbellStats()?.reconnects).toBeGreaterThanOrEqual(2), {
      timeout: 10_000,
      interval: 20,
    });
    expect(store.doorbellState()).toBe('connecting');
    // Wrong password on a reachable server: refused, reported, not revealed.
    const wrong = storage({
      connectionString: url.replace(`:${cluster.info.password}@`, `:${password}@`),
      logger,
      doorbell: { backoff: { baseMs: 50, maxMs: 100 } },
    });
    bell(wrong);
    // Refused credentials will not mend by waiting: broken, at error level, saying what to check.
    const refused = JSON.parse(await line(/doorbell cannot connect: .*password authentication failed/));
    expect(refused).toMatchObject({ level: 50 });
    expect(refused.msg).toMatch(/check the user and password of DATABASE_URL/);
    expect(wrong.doorbellState()).toBe('broken');
    expect(lines.join('')).not.toContain(password);
    expect(lines.join('')).not.toContain(cluster.info.password);
  });

  it('neither rings nor listens with doorbell: false', async () => {
    const quiet = storage({ doorbell: false });
    const unsubscribe = quiet.onChange(() => {});
    unsubscribe();
    expect(quiet.doorbellState()).toBe('off');
    expect(quiet.doorbellStats()).toBeUndefined();
  });
});
