import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageConfigurationError } from '../../src/storage/contract/errors.js';
import { SUPABASE_TABLES, type SupabaseTable } from '../../src/storage/supabase/supabase-storage.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';
import { mintSupabaseKey } from '../support/supabase-keys.js';

const write = (key: string, version = 1) => ({ key, version, json: '{"secret":true}', expiresAt: null });

// Each table the migrations ship has the same guarantees.
const TABLES = Object.entries(SUPABASE_TABLES).map(([table, schema]) => ({
  table: table as SupabaseTable,
  keyColumn: schema.keyField,
  functions: Object.values(schema.functions),
}));

describe.each(TABLES)(
  'Supabase security: only the service role reaches $table',
  ({ table, keyColumn, functions }) => {
    let env: SupabaseEnv;
    beforeAll(async () => {
      env = await startSupabaseEnv();
    });
    afterAll(() => env?.close());

    const rowCount = async (key: string) =>
      (
        await env.sql<{ n: number }>(
          `select count(*)::int as n from public.${table} where ${keyColumn} = $1`,
          [key],
        )
      )[0]?.n;

    it('lets the service role key write and read', async () => {
      const key = `svc:${randomUUID()}`;
      const storage = env.storage({ table });
      expect(await storage.apply([write(key)])).toEqual([{ status: 'applied' }]);
      expect((await storage.getMany([key])).get(key)).toEqual({
        version: 1,
        json: '{"secret": true}',
        expiresAt: null,
      });
    });

    for (const role of ['anon', 'authenticated'] as const) {
      it(`refuses the ${role} key both writes and reads, with a configuration error that names the fix`, async () => {
        const key = `${role}:${randomUUID()}`;
        const storage = env.storage({ table, key: await mintSupabaseKey(role) });
        const applying = storage.apply([write(key)]);
        await expect(applying).rejects.toBeInstanceOf(StorageConfigurationError);
        await expect(applying).rejects.toThrow(/service_role/);
        expect(await rowCount(key)).toBe(0);

        await env.storage({ table }).apply([write(key)]);
        const reading = storage.getMany([key]);
        await expect(reading).rejects.toBeInstanceOf(StorageConfigurationError);
        await expect(reading).rejects.toThrow(role === 'anon' ? /HTTP 401 42501/ : /HTTP 403 42501/);
      });
    }

    for (const role of ['anon', 'authenticated'] as const) {
      it(`refuses the ${role} key the version high-water mark`, async () => {
        const reading = env.storage({ table, key: await mintSupabaseKey(role) }).highWaterMark();
        await expect(reading).rejects.toBeInstanceOf(StorageConfigurationError);
        await expect(reading).rejects.toThrow(/42501/);
      });

      it(`refuses the ${role} key the change feed`, async () => {
        const reading = env.storage({ table, key: await mintSupabaseKey(role) }).changes(null);
        await expect(reading).rejects.toBeInstanceOf(StorageConfigurationError);
        await expect(reading).rejects.toThrow(/42501/);
        expect((await env.storage({ table }).changes(null)).reset).toBe(false);
      });
    }

    it('pins search_path on every function', async () => {
      const rows = await env.sql<{ fn: string; config: string[] | null }>(
        `select proname as fn, proconfig as config from pg_proc
       where pronamespace = 'public'::regnamespace and proname = any($1)`,
        [functions],
      );
      expect(rows).toHaveLength(functions.length);
      for (const row of rows) expect(row.config, row.fn).toContain('search_path=""');
    });

    it('never puts the key into error messages', async () => {
      const anonKey = await mintSupabaseKey('anon');
      const error = await env
        .storage({ table, key: anonKey })
        .getMany(['k'])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageConfigurationError);
      expect(String((error as Error).message)).not.toContain(anonKey);
      expect(JSON.stringify(error)).not.toContain(anonKey);
    });

    for (const role of ['anon', 'authenticated']) {
      it(`denies the ${role} role direct table access in SQL (no grants, RLS on)`, async () => {
        for (const statement of [
          `select * from public.${table}`,
          `insert into public.${table} (${keyColumn}, version) values ('x', 1)`,
          `delete from public.${table}`,
        ]) {
          // One simple-protocol query is one implicit transaction: the role switch ends with it.
          await expect(env.sql(`set local role ${role}; ${statement}`)).rejects.toMatchObject({
            code: '42501',
          });
        }
      });
    }

    it('has row level security on, with no policy that would open it to API roles', async () => {
      const [row] = await env.sql<{ rls: boolean }>(
        'select relrowsecurity as rls from pg_class where oid = $1::regclass',
        [`public.${table}`],
      );
      expect(row?.rls).toBe(true);
      expect(await env.sql('select * from pg_policies where tablename = $1', [table])).toEqual([]);
    });

    it('lets no API role but service_role execute the functions', async () => {
      const rows = await env.sql<{ fn: string; role: string; allowed: boolean }>(
        `select p.proname as fn, r.rolname as role, has_function_privilege(r.rolname, p.oid, 'execute') as allowed
       from pg_proc p cross join pg_roles r
       where p.pronamespace = 'public'::regnamespace
         and p.proname = any($1)
         and r.rolname in ('anon', 'authenticated', 'service_role')
       order by 1, 2`,
        [functions],
      );
      expect(rows).toHaveLength(functions.length * 3);
      for (const row of rows)
        expect({ ...row, allowed: row.allowed }).toEqual({ ...row, allowed: row.role === 'service_role' });
    });
  },
);

// The change feed's tables: written and read only through the functions above.
describe.each(['hybrid_cache_feeds', 'conversation_threads_feed', 'hybrid_cache_entries_feed'])(
  'Supabase security: the change feed table %s',
  (table) => {
    let env: SupabaseEnv;
    beforeAll(async () => {
      env = await startSupabaseEnv();
    });
    afterAll(() => env?.close());

    it('has row level security on, with no policy that would open it to API roles', async () => {
      const [row] = await env.sql<{ rls: boolean }>(
        'select relrowsecurity as rls from pg_class where oid = $1::regclass',
        [`public.${table}`],
      );
      expect(row?.rls).toBe(true);
      expect(await env.sql('select * from pg_policies where tablename = $1', [table])).toEqual([]);
    });

    it('grants anon and authenticated nothing on it, service_role what the functions need', async () => {
      const rows = await env.sql<{ role: string; privilege: string; allowed: boolean }>(
        `select r as role, p as privilege, has_table_privilege(r, $1::regclass, p) as allowed
         from unnest(array['anon', 'authenticated', 'service_role']) r,
              unnest(array['select', 'insert', 'update', 'delete', 'truncate']) p
         order by 1, 2`,
        [`public.${table}`],
      );
      const granted = (role: string) =>
        rows.filter((r) => r.role === role && r.allowed).map((r) => r.privilege);
      expect(granted('anon')).toEqual([]);
      expect(granted('authenticated')).toEqual([]);
      // Supabase's default privileges may give service_role more; these the functions need.
      expect(granted('service_role')).toEqual(
        expect.arrayContaining(
          table === 'hybrid_cache_feeds' ? ['select', 'update'] : ['select', 'insert', 'delete'],
        ),
      );
      if (table !== 'hybrid_cache_feeds') {
        const sequence = await env.sql<{ role: string; allowed: boolean }>(
          `select r as role, has_sequence_privilege(r, pg_get_serial_sequence($1, 'id'), 'usage, select, update') as allowed
           from unnest(array['anon', 'authenticated']) r order by 1`,
          [`public.${table}`],
        );
        expect(sequence).toEqual([
          { role: 'anon', allowed: false },
          { role: 'authenticated', allowed: false },
        ]);
      }
      for (const role of ['anon', 'authenticated']) {
        await expect(env.sql(`set local role ${role}; select * from public.${table}`)).rejects.toMatchObject({
          code: '42501',
        });
      }
    });
  },
);
