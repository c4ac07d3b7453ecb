import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoorbellRing } from '../../src/storage/contract/types.js';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { PostgresStorage } from '../../src/storage/postgres/postgres-storage.js';
import type { SupabaseStorage } from '../../src/storage/supabase/supabase-storage.js';
import { put } from '../../src/testing/writes.js';
import { connectionUrl } from '../support/plain-postgres.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

// Rings only: no feed is read here, so the shared cluster's xmin does not matter.
let env: SupabaseEnv;
beforeAll(async () => {
  env = await startSupabaseEnv();
});
afterAll(() => env?.close());

let version = Date.now() * LOGICAL_SLOTS;
const silent = pino({ level: 'silent' });

/** Subscribes; `after(n)` resolves once it rang more than `n` times; `heard` holds each ring. */
function bell(store: SupabaseStorage) {
  let rings = 0;
  const heard: DoorbellRing[] = [];
  const waiting: Array<[number, () => void]> = [];
  const unsubscribe = store.onChange((ring) => {
    rings++;
    heard.push(ring ?? {});
    for (const [n, resolve] of waiting) if (rings > n) resolve();
  });
  return {
    unsubscribe,
    heard,
    rings: () => rings,
    after: (n: number) =>
      new Promise<void>((resolve) => (rings > n ? resolve() : waiting.push([n, resolve]))),
  };
}

describe('SupabaseStorage doorbell', () => {
  it('listens on the direct connection it is given, and hears SupabaseStorage and PostgresStorage writers', async () => {
    const listen = { connectionString: connectionUrl(env.db.admin) };
    const listener = env.storage({ doorbell: { listen }, logger: silent });
    const writer = env.storage({ doorbell: { ring: true }, logger: silent });
    const direct = new PostgresStorage({
      connectionString: listen.connectionString,
      table: 'conversation_threads',
      logger: silent,
    });
    const b = bell(listener);
    try {
      await b.after(0);
      expect(listener.doorbellState()).toBe('listening');
      const before = env.gateway.requests.length;
      await writer.apply([put(`sb:${randomUUID()}`, ++version, 1)]);
      await b.after(1);
      // The ring is an RPC of its own, after the write's.
      expect(env.gateway.requests.slice(before).map((r) => r.fn)).toEqual([
        'write_conversation_threads',
        'hybrid_cache_ring',
      ]);
      await direct.apply([put(`pg:${randomUUID()}`, ++version, 1)]);
      await b.after(2);
    } finally {
      b.unsubscribe();
      await direct.close();
    }
    expect(listener.doorbellState()).toBe('off');
  });

  it('names in its ring the origin its writes carried, as PostgresStorage does', async () => {
    const listen = { connectionString: connectionUrl(env.db.admin) };
    const listener = env.storage({ doorbell: { listen }, logger: silent });
    const writer = env.storage({ doorbell: { ring: true }, logger: silent });
    const b = bell(listener);
    try {
      await b.after(0);
      await writer.apply([put(`sb:${randomUUID()}`, ++version, 1)], { origin: 'supabase-cache' });
      await b.after(1);
      await writer.apply([put(`sb:${randomUUID()}`, ++version, 2)]);
      await b.after(2);
      expect(b.heard).toEqual([{}, { origin: 'supabase-cache' }, {}]);
    } finally {
      b.unsubscribe();
    }
  });

  it('neither listens nor rings unless asked', async () => {
    const store = env.storage();
    const before = env.gateway.requests.length;
    await store.apply([put(`quiet:${randomUUID()}`, ++version, 1)]);
    expect(env.gateway.requests.slice(before).map((r) => r.fn)).toEqual(['write_conversation_threads']);
    store.onChange(() => {})();
    expect(store.doorbellState()).toBe('off');
  });

  it('lets no API role but service_role ring', async () => {
    const pool = env.pool(1);
    const { rows } = await pool.query<{ role: string; allowed: boolean }>(
      `select r.rolname as role, has_function_privilege(r.rolname, 'public.hybrid_cache_ring(text, text)', 'execute') as allowed
       from pg_roles r where r.rolname in ('anon', 'authenticated', 'service_role') order by 1`,
    );
    expect(rows).toEqual([
      { role: 'anon', allowed: false },
      { role: 'authenticated', allowed: false },
      { role: 'service_role', allowed: true },
    ]);
  });
});
