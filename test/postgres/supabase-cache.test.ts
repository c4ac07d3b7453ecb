import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConversationStore, threadKey } from '../../src/conversation/index.js';
import { createHybridCache, type HybridCacheOptions } from '../../src/index.js';
import type { Storage } from '../../src/storage/contract/types.js';
import { SupabaseStorage } from '../../src/storage/supabase/supabase-storage.js';
import { PostgrestGateway } from '../support/gateway.js';
import { PostgresCluster } from '../support/postgres.js';
import { prepareSupabaseDatabase } from '../support/supabase-db.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';
import { serviceRoleKey } from '../support/supabase-keys.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'supabase-cache-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A cache that retries quickly, so outages and recoveries play out in well under a second. */
const openCache = <V>(storage: Storage, outbox = 'outbox.db', extra: Partial<HybridCacheOptions> = {}) =>
  createHybridCache<V>({
    storage,
    outbox: { path: join(dir, outbox) },
    flush: { intervalMs: 10 },
    retry: { baseMs: 10, maxMs: 100 },
    breaker: { failureThreshold: 2, halfOpenAfterMs: 100 },
    readTimeoutMs: 2_000,
    logger: pino({ level: 'silent' }),
    ...extra,
  });

const stored = async (storage: Storage, key: string) => (await storage.getMany([key])).get(key);

describe('hybrid cache over SupabaseStorage (gateway + PostgreSQL)', () => {
  let env: SupabaseEnv;
  beforeAll(async () => {
    env = await startSupabaseEnv();
  });
  afterAll(() => env?.close());

  it('keeps serving while the gateway answers 503, and drains the backlog by itself afterwards', async () => {
    const storage = env.storage();
    const cache = await openCache<{ n: number }>(storage);
    const [a, b] = [`a:${randomUUID()}`, `b:${randomUUID()}`];
    try {
      await cache.set(a, { n: 1 });
      await cache.flush({ timeoutMs: 5_000 });

      env.gateway.inject({ kind: 'unavailable', retryAfterSeconds: 0 }, { times: Number.POSITIVE_INFINITY });
      await cache.set(b, { n: 2 });
      await cache.delete(a);
      await expect.poll(() => cache.stats().health, { timeout: 5_000 }).not.toBe('healthy');
      expect(await cache.get(b)).toEqual({ n: 2 });
      expect(await cache.get(a)).toBeUndefined();
      expect(cache.stats().pending).toBe(2);
      const rows = await env.sql('select thread_id from conversation_threads where thread_id = any($1)', [
        [a, b],
      ]);
      expect(rows).toEqual([{ thread_id: a }]); // nothing got through: b is not there, a is not deleted
    } finally {
      env.gateway.faults.clear();
    }
    // No new writes: the timer-driven flusher drains the backlog once the gateway is back.
    await expect.poll(() => cache.stats().pending, { timeout: 10_000 }).toBe(0);
    expect(await stored(storage, b)).toMatchObject({ json: '{"n": 2}' });
    expect(await stored(storage, a)).toMatchObject({ json: null });
    await expect.poll(() => cache.stats().health, { timeout: 5_000 }).toBe('healthy');
    await cache.close({ timeoutMs: 5_000 });
  });

  it('commit-then-drop never lets an older value win', async () => {
    const storage = env.storage();
    const cache = await openCache<string>(storage);
    const k = `drop:${randomUUID()}`;
    try {
      await cache.set(k, 'v1');
      await cache.flush({ timeoutMs: 5_000 });
      // The cache writes through the function that records its origin.
      env.gateway.inject({ kind: 'commitThenDrop' }, { fn: 'write_conversation_threads_from' });
      await cache.set(k, 'v2');
      await expect
        .poll(() => env.gateway.requests.some((r) => r.outcome === 'committed-then-dropped'), {
          timeout: 5_000,
        })
        .toBe(true);
      await cache.set(k, 'v3');
      await cache.flush({ timeoutMs: 5_000 });
      expect(await cache.get(k)).toBe('v3');
      expect(JSON.parse((await stored(storage, k))?.json ?? 'null')).toBe('v3');
      expect(cache.stats().deadLetters).toBe(0);
    } finally {
      await cache.close({ timeoutMs: 5_000 });
    }
  });

  it('keeps a conversation across a restart of the cache, read back from Supabase (not the outbox)', async () => {
    const first = await openCache<unknown>(env.storage(), 'first-outbox.db');
    const conversations = new ConversationStore({ cache: first });
    const id = await conversations.createThread({ tool_name: 'chat', initial_context: { prompt: 'hello' } });
    await conversations.addTurn(id, { role: 'user', content: 'hello' });
    await conversations.addTurn(id, { role: 'assistant', content: 'hi there' });
    await first.close({ timeoutMs: 5_000 });

    // A new process: new cache, empty outbox of its own; everything comes from the store.
    const storage = env.storage();
    const second = await openCache<unknown>(storage, 'second-outbox.db');
    try {
      const thread = await new ConversationStore({ cache: second }).getThread(id);
      expect(thread?.turns.map((t) => [t.role, t.content])).toEqual([
        ['user', 'hello'],
        ['assistant', 'hi there'],
      ]);
      const row = await stored(storage, threadKey(id));
      expect(Object.keys(JSON.parse(row?.json ?? '{}')).sort()).toEqual(
        [
          'created_at',
          'initial_context',
          'last_updated_at',
          'parent_thread_id',
          'thread_id',
          'tool_name',
          'turns',
        ].sort(),
      );
      expect(row?.expiresAt).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    } finally {
      await second.close({ timeoutMs: 5_000 });
    }
  });
});

describe('hybrid cache over SupabaseStorage when PostgreSQL stops and restarts', () => {
  let cluster: PostgresCluster;
  let gateway: PostgrestGateway;
  let key: string;
  beforeAll(async () => {
    cluster = await PostgresCluster.create(); // private: the shared cluster must stay up for other files
    const db = await prepareSupabaseDatabase(cluster.info, 'cache_restart', randomBytes(8).toString('hex'));
    gateway = await PostgrestGateway.start({ connection: db.authenticator });
    key = await serviceRoleKey();
  });
  afterAll(async () => {
    await gateway?.close();
    await cluster?.destroy();
  });

  it('serves cached reads and accepts writes while PostgreSQL is down, then drains after it restarts', async () => {
    const storage = new SupabaseStorage({ url: gateway.url, key });
    const cache = await openCache<number>(storage);
    try {
      await cache.set('before', 1);
      await cache.flush({ timeoutMs: 5_000 });
      await cluster.stop();

      expect(await cache.get('before')).toBe(1);
      await cache.set('during', 2);
      await cache.delete('before');
      await expect.poll(() => cache.stats().health, { timeout: 5_000 }).not.toBe('healthy');
      expect(await cache.get('during')).toBe(2);
      expect(await cache.get('before')).toBeUndefined();

      await cluster.start();
      await expect.poll(() => cache.stats().pending, { timeout: 10_000 }).toBe(0);
      expect(await stored(storage, 'during')).toMatchObject({ json: '2' });
      expect(await stored(storage, 'before')).toMatchObject({ json: null });
    } finally {
      if (!cluster.running) await cluster.start();
      await cache.close({ timeoutMs: 5_000 });
    }
  });
});
