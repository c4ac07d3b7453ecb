import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusForSqlState } from '../support/gateway/errors.js';
import { freshSupabaseDatabase, type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';
import { mintSupabaseKey } from '../support/supabase-keys.js';

// The gateway must answer supabase-js the way PostgREST does, or the adapter tests prove nothing.
describe('PostgREST-compatible test gateway', () => {
  let env: SupabaseEnv;

  beforeAll(async () => {
    const database = await freshSupabaseDatabase();
    env = await startSupabaseEnv({ database });
    await env.sql(`
      create function public.t_void(p_n integer) returns void language sql as 'select';
      create function public.t_add(a integer, b integer default 10) returns integer language sql as 'select a + b';
      create function public.t_series(p_n integer) returns setof integer language sql as 'select generate_series(1, p_n)';
      create function public.t_rows(p_n integer) returns table (i integer, label text)
        language sql as $$ select g, 'row ' || g from generate_series(1, p_n) g $$;
      create function public.t_whoami() returns jsonb language sql
        as $$ select jsonb_build_object('role', current_user, 'claims', current_setting('request.jwt.claims', true)::jsonb) $$;
      create function public.t_raise(p_code text) returns void language plpgsql as $$
        begin raise exception 'raised %', p_code using errcode = p_code, detail = 'some detail', hint = 'some hint'; end $$;
      create function public.t_body(jsonb) returns jsonb language sql as 'select $1';
    `);
    await env.gateway.reloadSchema();
  });
  afterAll(() => env?.close());

  const post = async (fn: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${env.gateway.url}/rest/v1/rpc/${fn}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: `Bearer ${env.serviceRoleKey}`,
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      body: text === '' ? undefined : JSON.parse(text),
    };
  };

  it('passes the JSON body keys as named arguments, using defaults for omitted ones', async () => {
    const client = env.client();
    expect(await client.rpc('t_add', { a: 1, b: 2 })).toMatchObject({ data: 3, error: null, status: 200 });
    expect(await client.rpc('t_add', { a: 1 })).toMatchObject({ data: 11, status: 200 });
  });

  it('answers 404 PGRST202 when the body has an extra key or misses a required one', async () => {
    const client = env.client();
    const extra = await client.rpc('t_add', { a: 1, b: 2, c: 3 });
    expect(extra.status).toBe(404);
    expect(extra.error).toMatchObject({
      code: 'PGRST202',
      message: 'Could not find the function public.t_add(a, b, c) in the schema cache',
    });
    expect(extra.error?.details).toContain('with parameters a, b, c');
    const missing = await client.rpc('t_add', { b: 2 });
    expect(missing.status).toBe(404);
    expect(missing.error?.code).toBe('PGRST202');
    const unknown = await client.rpc('no_such_function', {});
    expect(unknown.error?.message).toBe(
      'Could not find the function public.no_such_function without parameters in the schema cache',
    );
  });

  it('answers 204 with no body for a void function', async () => {
    const raw = await post('t_void', { p_n: 1 });
    expect(raw.status).toBe(204);
    expect(raw.body).toBeUndefined();
    expect(await env.client().rpc('t_void', { p_n: 1 })).toMatchObject({
      data: null,
      error: null,
      status: 204,
    });
  });

  it('answers a scalar as its JSON value and a set as a JSON array', async () => {
    const client = env.client();
    expect((await client.rpc('t_series', { p_n: 3 })).data).toEqual([1, 2, 3]);
    expect((await client.rpc('t_series', { p_n: 0 })).data).toEqual([]);
    expect((await client.rpc('t_rows', { p_n: 2 })).data).toEqual([
      { i: 1, label: 'row 1' },
      { i: 2, label: 'row 2' },
    ]);
    expect((await client.rpc('t_rows', { p_n: 1 }).single()).data).toEqual({ i: 1, label: 'row 1' });
  });

  it('passes the whole body to a function with a single unnamed jsonb parameter', async () => {
    expect((await env.client().rpc('t_body', { any: ['thing'] })).data).toEqual({ any: ['thing'] });
  });

  it('calls stable functions with GET and query-string arguments', async () => {
    expect((await env.client().rpc('t_add', { a: 4, b: 5 }, { get: true })).data).toBe(9);
  });

  it('selects the schema with Content-Profile / Accept-Profile and rejects unknown ones with 406 PGRST106', async () => {
    const viaPost = await env.client().schema('private').rpc('t_add', { a: 1 });
    expect(viaPost.status).toBe(406);
    expect(viaPost.error).toMatchObject({
      code: 'PGRST106',
      message: 'Invalid schema: private',
      hint: 'Only the following schemas are exposed: public',
    });
    const viaGet = await env.client().schema('private').rpc('t_add', { a: 1 }, { get: true });
    expect(viaGet.status).toBe(406);
    expect(viaGet.error?.code).toBe('PGRST106');
    expect((await env.client().schema('public').rpc('t_add', { a: 1 })).data).toBe(11);
  });

  it("switches to the JWT's role and exposes its claims in request.jwt.claims", async () => {
    const service = await env.client().rpc('t_whoami');
    expect(service.data).toMatchObject({ role: 'service_role', claims: { role: 'service_role' } });
    const authenticatedKey = await mintSupabaseKey('authenticated', { claims: { sub: 'user-1' } });
    const user = await env.client(authenticatedKey).rpc('t_whoami');
    expect(user.data).toMatchObject({ role: 'authenticated', claims: { sub: 'user-1' } });
  });

  it('rejects a JWT with a wrong signature, a malformed one, or an expired one with 401', async () => {
    const forged = await mintSupabaseKey('service_role', {
      secret: 'some-other-secret-that-is-long-enough!!',
    });
    const bad = await env.client(forged).rpc('t_add', { a: 1 });
    expect(bad.status).toBe(401);
    expect(bad.error).toMatchObject({ code: 'PGRST301', message: 'JWT cryptographic operation failed' });

    const malformed = await env.client('not-a-jwt').rpc('t_add', { a: 1 });
    expect(malformed.status).toBe(401);
    expect(malformed.error).toMatchObject({ code: 'PGRST301', message: 'Expected 3 parts in JWT; got 1' });

    const expired = await mintSupabaseKey('service_role', { expiresInSeconds: -3600 });
    const late = await post('t_add', { a: 1 }, { Authorization: `Bearer ${expired}` });
    expect(late.status).toBe(401);
    expect(late.body).toMatchObject({ code: 'PGRST303', message: 'JWT expired' });
    expect(late.headers.get('www-authenticate')).toContain('invalid_token');
  });

  it('maps SQLSTATEs to HTTP statuses like PostgREST, with the error body {code, message, details, hint}', async () => {
    const cases: [string, number][] = [
      ['08006', 503],
      ['23505', 409],
      ['23503', 409],
      ['42883', 404],
      ['42P01', 404],
      ['P0001', 400],
      ['57014', 500],
      ['53100', 503],
      ['40001', 500],
      ['22012', 400],
      ['PT418', 418],
    ];
    for (const [code, status] of cases) {
      const result = await post('t_raise', { p_code: code });
      expect({ code, status: result.status }).toEqual({ code, status });
      expect(result.body).toEqual({
        code,
        message: `raised ${code}`,
        details: 'some detail',
        hint: 'some hint',
      });
    }
  });

  it('answers 42501 with 401 for the anon role and 403 for any other role', async () => {
    await env.sql('revoke execute on function public.t_raise(text) from public, anon, authenticated');
    const asAnon = await env.client(env.anonKey).rpc('t_raise', { p_code: 'P0001' });
    expect(asAnon.status).toBe(401);
    expect(asAnon.error?.code).toBe('42501');
    const authenticatedKey = await mintSupabaseKey('authenticated');
    const asUser = await env.client(authenticatedKey).rpc('t_raise', { p_code: 'P0001' });
    expect(asUser.status).toBe(403);
    expect(asUser.error?.code).toBe('42501');
  });

  it('rejects invalid JSON bodies with 400 PGRST102', async () => {
    const result = await post('t_add', '{"a": ');
    expect(result.status).toBe(400);
    expect(result.body).toMatchObject({ code: 'PGRST102' });
  });

  it("sees new functions only after NOTIFY pgrst, 'reload schema'", async () => {
    await env.sql("create function public.t_late() returns text language sql as $$ select 'late' $$");
    expect((await env.client().rpc('t_late')).error?.code).toBe('PGRST202');
    await env.sql(`notify pgrst, 'reload schema'`);
    await expect.poll(async () => (await env.client().rpc('t_late')).data, { timeout: 5_000 }).toBe('late');
  });

  it('keeps the SQLSTATE table for codes raised outside functions', () => {
    expect(statusForSqlState('57P01', 'terminating connection', true)).toBe(503);
    expect(statusForSqlState('53400', 'config limit', true)).toBe(500);
    expect(statusForSqlState('25006', 'read only', true)).toBe(405);
    expect(statusForSqlState('22023', 'role "nobody" does not exist', true)).toBe(401);
    expect(statusForSqlState('XX000', 'internal', true)).toBe(500);
    expect(statusForSqlState('42P17', 'infinite recursion', true)).toBe(500);
  });
});
