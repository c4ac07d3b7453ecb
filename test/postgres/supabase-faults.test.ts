import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../../src/storage/contract/errors.js';
import { SupabaseStorage } from '../../src/storage/supabase/supabase-storage.js';
import { put } from '../helpers/writes.js';
import { PostgrestGateway } from '../support/gateway.js';
import { PostgresCluster } from '../support/postgres.js';
import { applyMigration, prepareSupabaseDatabase } from '../support/supabase-db.js';
import { freshSupabaseDatabase, type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';
import { serviceRoleKey } from '../support/supabase-keys.js';

const key = (label: string) => `${label}:${randomUUID()}`;

describe('SupabaseStorage under gateway faults', () => {
  let env: SupabaseEnv;
  beforeAll(async () => {
    env = await startSupabaseEnv();
  });
  afterAll(() => env?.close());

  it('maps 503 with Retry-After to a TransientStorageError carrying the delay, and works again afterwards', async () => {
    const storage = env.storage();
    const k = key('503');
    env.gateway.inject({ kind: 'unavailable', retryAfterSeconds: 7 }, { times: 2 });
    const failed = await storage.apply([put(k, 1, 'v1')]).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(TransientStorageError);
    expect((failed as TransientStorageError).retryAfterMs).toBe(7_000);
    await expect(storage.getMany([k])).rejects.toBeInstanceOf(TransientStorageError);
    expect(await storage.apply([put(k, 1, 'v1')])).toEqual([{ status: 'applied' }]);
    expect((await storage.getMany([k])).get(k)?.json).toBe('"v1"');
  });

  it('maps a connection reset to a TransientStorageError', async () => {
    const storage = env.storage();
    env.gateway.inject({ kind: 'reset' });
    await expect(storage.getMany([key('reset')])).rejects.toBeInstanceOf(TransientStorageError);
    expect((await storage.getMany([key('reset')])).size).toBe(0);
  });

  it("sets no deadline of its own: a hanging call ends at the caller's deadline, with its reason", async () => {
    const storage = env.storage();
    env.gateway.inject({ kind: 'hang' });
    const started = Date.now();
    await expect(storage.getMany([key('hang')], { signal: AbortSignal.timeout(300) })).rejects.toThrow(
      expect.objectContaining({ name: 'TimeoutError' }),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(env.gateway.requests.at(-1)?.outcome).toBe('hang');
  });

  it("rejects with the caller's abort reason when the caller aborts (not a storage error)", async () => {
    const storage = env.storage();
    env.gateway.inject({ kind: 'hang' });
    const controller = new AbortController();
    const pending = storage.getMany([key('abort')], { signal: controller.signal });
    const reason = new Error('caller gave up');
    setTimeout(() => controller.abort(reason), 50);
    await expect(pending).rejects.toBe(reason);
    const aborted = new AbortController();
    aborted.abort(reason);
    await expect(storage.apply([put(key('pre-aborted'), 1, 1)], { signal: aborted.signal })).rejects.toBe(
      reason,
    );
  });

  it('waits out a slow gateway when the caller gives no deadline', async () => {
    const storage = env.storage();
    const k = key('slow');
    env.gateway.inject({ kind: 'delay', ms: 150 });
    expect(await storage.apply([put(k, 3, 'slow')])).toEqual([{ status: 'applied' }]);
  });

  it('commit-then-drop: the retry of the lost answer is stale and an older re-send never wins', async () => {
    const storage = env.storage();
    const k = key('commit-drop');
    await storage.apply([put(k, 1, 'old')]);
    env.gateway.inject({ kind: 'commitThenDrop' });
    await expect(storage.apply([put(k, 2, 'new')])).rejects.toBeInstanceOf(TransientStorageError);
    expect(env.gateway.requests.at(-1)?.outcome).toBe('committed-then-dropped');
    // The write landed although the caller saw a failure; retrying it is harmless.
    expect(await storage.apply([put(k, 2, 'new')])).toEqual([{ status: 'stale', storedVersion: 2 }]);
    // A delayed older batch arriving afterwards cannot overwrite it.
    expect(await storage.apply([put(k, 1, 'old')])).toEqual([{ status: 'stale', storedVersion: 2 }]);
    expect((await storage.getMany([k])).get(k)).toMatchObject({ version: 2, json: '"new"' });
  });

  it('fails a call permanently when the database refuses a write, whatever the batch size (the cache finds the item)', async () => {
    const storage = env.storage();
    const bad = put(key('bad-expiry'), 1, 'x', 1e300); // beyond timestamptz: 22008 -> HTTP 400
    await expect(storage.apply([bad])).rejects.toBeInstanceOf(PermanentStorageError);
    const good = put(key('good'), 1, 'fine');
    await expect(storage.apply([good, bad])).rejects.toBeInstanceOf(PermanentStorageError);
    expect((await storage.getMany([good.key])).size).toBe(0); // the failed batch changed nothing
  });

  it('rejects malformed writes per item without sending them', async () => {
    const storage = env.storage();
    const good = put(key('valid'), 1, 'ok');
    const results = await storage.apply([
      { ...good, key: '' },
      good,
      { ...good, key: key('bad-version'), version: 1.5 },
      { ...good, key: key('bad-expiry'), expiresAt: Number.NaN },
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'applied', 'rejected', 'rejected']);
  });

  it('stores values PostgreSQL jsonb cannot hold (NUL, lone surrogates) losslessly', async () => {
    const storage = env.storage();
    const cases = [
      { text: 'a\u0000b' },
      { text: 'lone \ud800 high' },
      '\udc00',
      { $: '$hybrid-cache:base64-json' },
    ];
    const writes = cases.map((value, i) => put(key(`jsonb-${i}`), 1, value));
    expect((await storage.apply(writes)).every((r) => r.status === 'applied')).toBe(true);
    const found = await storage.getMany(writes.map((w) => w.key));
    writes.forEach((w, i) => {
      expect(found.get(w.key)?.json).toBe(w.json);
      expect(JSON.parse(found.get(w.key)?.json ?? 'null')).toEqual(cases[i]);
    });
  });

  it('reports an answer of the wrong shape as a configuration error', async () => {
    const database = await freshSupabaseDatabase();
    const other = await startSupabaseEnv({ database });
    try {
      await other.sql(`
        drop function public.get_conversation_threads_with_turns(text[]);
        create function public.get_conversation_threads_with_turns(p_thread_ids text[]) returns integer language sql as 'select 1';
        grant execute on function public.get_conversation_threads_with_turns(text[]) to service_role;`);
      await other.gateway.reloadSchema();
      await expect(other.storage().getMany(['k'])).rejects.toThrow(
        expect.objectContaining({
          name: 'StorageConfigurationError',
          message: expect.stringMatching(/unexpected shape/),
        }),
      );
    } finally {
      await other.close();
    }
  });
});

describe('SupabaseStorage when the functions are missing (PGRST202)', () => {
  it('throws a StorageConfigurationError that says to apply the migration and reload the schema, then recovers', async () => {
    const database = await freshSupabaseDatabase();
    const env = await startSupabaseEnv({ database });
    try {
      await env.sql('drop function public.get_conversation_threads_with_turns(text[])');
      await env.gateway.reloadSchema();
      const error = await env
        .storage()
        .getMany(['k'])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageConfigurationError);
      const message = (error as Error).message;
      expect(message).toContain('PGRST202');
      expect(message).toContain('supabase/migrations/');
      expect(message).toContain("NOTIFY pgrst, 'reload schema'");
      expect(message).toContain('supabase db push');

      // The migration ends with NOTIFY pgrst, so re-applying it is the whole fix.
      const admin = new pg.Client(database.admin);
      await admin.connect();
      await applyMigration(admin);
      await admin.end();
      await expect
        .poll(
          async () =>
            (await env
              .storage()
              .getMany(['k'])
              .catch(() => 'failed')) instanceof Map,
          { timeout: 30_000 },
        )
        .toBe(true);
    } finally {
      await env.close();
    }
  });
});

describe('SupabaseStorage when PostgreSQL itself stops and restarts', () => {
  let cluster: PostgresCluster;
  let gateway: PostgrestGateway;
  let storage: SupabaseStorage;

  beforeAll(async () => {
    // A private cluster: stopping the run's shared one would break other test files.
    cluster = await PostgresCluster.create();
    const db = await prepareSupabaseDatabase(cluster.info, 'restart', randomBytes(8).toString('hex'));
    gateway = await PostgrestGateway.start({ connection: db.authenticator });
    storage = new SupabaseStorage({ url: gateway.url, key: await serviceRoleKey() });
  });
  afterAll(async () => {
    await gateway?.close();
    await cluster?.destroy();
  });

  it('fails transiently (503 from the gateway) while the database is down and works again after restart', async () => {
    const k = key('restart');
    expect(await storage.apply([put(k, 1, 'before')])).toEqual([{ status: 'applied' }]);
    await cluster.stop();

    const down = await storage.apply([put(k, 2, 'during')]).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(TransientStorageError);
    expect((down as Error).message).toMatch(/HTTP 503 PGRST00[01]/);
    await expect(storage.getMany([k])).rejects.toBeInstanceOf(TransientStorageError);

    await cluster.start();
    await expect
      .poll(async () => (await storage.apply([put(k, 2, 'after')]).catch(() => []))[0])
      .toEqual({
        status: 'applied',
      });
    expect((await storage.getMany([k])).get(k)).toMatchObject({ version: 2, json: '"after"' });
  });
});
