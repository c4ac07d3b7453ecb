import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from './daemon-process.js';

const TOKEN = 'test-token-0123456789abcdef';
const NOT_FOUND = /was not found or has expired; restart the conversation .* without continuation_id/;

/** An object nested `levels` levels deep: `{a: {a: … 1}}`. */
function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let level = 0; level < levels; level++) value = { a: value };
  return value;
}

describe('daemon HTTP API (one process, token required)', () => {
  const work = tempWorkDir();
  let daemon: DaemonProcess;
  const call = (method: string, path: string, options: Parameters<typeof request>[3] = {}) =>
    request(daemon, method, path, { token: TOKEN, ...options });

  beforeAll(async () => {
    daemon = await startDaemon(work.dir, {
      DAEMON_TOKEN: TOKEN,
      DAEMON_BODY_LIMIT_BYTES: '4096',
      CACHE_MAX_VALUE_BYTES: '2048',
      MAX_CONVERSATION_TURNS: '2',
      LOG_LEVEL: 'info',
    });
  });

  afterAll(async () => {
    await daemon?.stop('SIGTERM');
    work.cleanup();
  });

  it('creates a thread, adds turns, reads it and its chain, deletes it', async () => {
    const created = await call('POST', '/v1/threads', {
      json: { tool_name: 'chat', initial_context: { prompt: 'hi', temperature: 0.2 } },
    });
    expect(created.status).toBe(201);
    const { thread_id: id } = created.body as { thread_id: string };
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const turn = await call('POST', `/v1/threads/${id}/turns`, {
      json: { role: 'user', content: 'hello', files: ['a.py'], model_name: 'm1' },
    });
    expect(turn.status).toBe(201);

    const child = await call('POST', '/v1/threads', { json: { tool_name: 'chat', parent_thread_id: id } });
    const childId = (child.body as { thread_id: string }).thread_id;

    const read = await call('GET', `/v1/threads/${id}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({
      thread_id: id,
      parent_thread_id: null,
      tool_name: 'chat',
      initial_context: { prompt: 'hi' },
      turns: [{ role: 'user', content: 'hello', files: ['a.py'], images: null, model_name: 'm1' }],
    });
    expect(read.body).not.toHaveProperty('initial_context.temperature');

    const chain = await call('GET', `/v1/threads/${childId}/chain`);
    expect(chain.status).toBe(200);
    expect((chain.body as { threads: { thread_id: string }[] }).threads.map((t) => t.thread_id)).toEqual([
      id,
      childId,
    ]);

    expect((await call('DELETE', `/v1/threads/${id}`)).status).toBe(204);
    const gone = await call('GET', `/v1/threads/${id}`);
    expect(gone.status).toBe(404);
    expect((gone.body as { message: string }).message).toMatch(NOT_FOUND);
  });

  it('refuses a turn past MAX_CONVERSATION_TURNS with 409', async () => {
    const { body } = await call('POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (body as { thread_id: string }).thread_id;
    for (const content of ['one', 'two']) {
      expect(
        (await call('POST', `/v1/threads/${id}/turns`, { json: { role: 'user', content } })).status,
      ).toBe(201);
    }
    const third = await call('POST', `/v1/threads/${id}/turns`, {
      json: { role: 'assistant', content: 'three' },
    });
    expect(third.status).toBe(409);
    expect(third.body).toMatchObject({
      error: 'turn_limit',
      message: expect.stringContaining('limit of 2 turns'),
    });
    const read = await call('GET', `/v1/threads/${id}`);
    expect((read.body as { turns: unknown[] }).turns).toHaveLength(2);
  });

  it('answers 404 with the not-found message for an unknown thread', async () => {
    const id = randomUUID();
    for (const [method, path, json] of [
      ['GET', `/v1/threads/${id}`, undefined],
      ['GET', `/v1/threads/${id}/chain`, undefined],
      ['POST', `/v1/threads/${id}/turns`, { role: 'user', content: 'x' }],
    ] as const) {
      const response = await call(method, path, json ? { json } : {});
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.body).toMatchObject({
        error: 'thread_not_found',
        message: expect.stringMatching(NOT_FOUND),
      });
      expect((response.body as { message: string }).message).toContain(id);
    }
  });

  it('answers 400 for a thread id that is not a UUID v4', async () => {
    for (const [method, path] of [
      ['GET', '/v1/threads/not-a-uuid'],
      ['DELETE', '/v1/threads/12345'],
      ['POST', '/v1/threads/xyz/turns'],
    ] as const) {
      const response = await call(
        method,
        path,
        method === 'POST' ? { json: { role: 'user', content: 'x' } } : {},
      );
      expect(response.status, `${method} ${path}`).toBe(400);
      expect(response.body).toMatchObject({
        error: 'invalid_thread_id',
        message: expect.stringContaining('UUID'),
      });
    }
  });

  it('answers 400 for invalid JSON, naming the problem', async () => {
    const response = await call('POST', '/v1/threads', { body: '{"tool_name": "chat",' });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      error: 'invalid_json',
      message: expect.stringContaining('not valid JSON'),
    });
  });

  it('answers 400 for wrong types, missing or unknown fields, naming the field', async () => {
    const cases: [string, unknown, string][] = [
      ['/v1/threads', { tool_name: 42 }, 'tool_name'],
      ['/v1/threads', {}, 'tool_name'],
      ['/v1/threads', { tool_name: 'chat', surprise: true }, 'surprise'],
      ['/v1/threads', { tool_name: 'chat', parent_thread_id: 'nope' }, 'parent_thread_id'],
      ['/v1/threads', [1, 2], 'expected object'],
    ];
    for (const [path, json, mentions] of cases) {
      const response = await call('POST', path, { json });
      expect(response.status, JSON.stringify(json)).toBe(400);
      expect(response.body).toMatchObject({
        error: 'invalid_body',
        message: expect.stringContaining(mentions),
      });
    }
    const { body } = await call('POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (body as { thread_id: string }).thread_id;
    const badTurn = await call('POST', `/v1/threads/${id}/turns`, { json: { role: 'system', content: 1 } });
    expect(badTurn.status).toBe(400);
    expect((badTurn.body as { message: string }).message).toMatch(/role.*content|content.*role/);
    expect(((await call('GET', `/v1/threads/${id}`)).body as { turns: unknown[] }).turns).toHaveLength(0);
  });

  it('accepts bodies nested 64 levels deep, readable by every route, and refuses deeper ones with 400', async () => {
    // The body is level 1, initial_context or model_metadata level 2, and {c} or {m} in it is
    // level 3: 62 more levels reach the limit.
    const deepest = nested(62);
    const created = await call('POST', '/v1/threads', {
      json: { tool_name: 'chat', initial_context: { c: deepest } },
    });
    expect(created.status).toBe(201);
    const id = (created.body as { thread_id: string }).thread_id;
    const turn = await call('POST', `/v1/threads/${id}/turns`, {
      json: { role: 'user', content: 'x', model_metadata: { m: deepest } },
    });
    expect(turn.status).toBe(201);
    const child = await call('POST', '/v1/threads', { json: { tool_name: 'chat', parent_thread_id: id } });
    const childId = (child.body as { thread_id: string }).thread_id;

    const read = await call('GET', `/v1/threads/${id}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({
      initial_context: { c: deepest },
      turns: [{ model_metadata: { m: deepest } }],
    });
    const chain = await call('GET', `/v1/threads/${childId}/chain`);
    expect(chain.status).toBe(200);
    expect(chain.body).toMatchObject({
      threads: [{ thread_id: id, initial_context: { c: deepest } }, { thread_id: childId }],
    });

    const tooDeep = nested(63);
    for (const [path, json] of [
      ['/v1/threads', { tool_name: 'chat', initial_context: { c: tooDeep } }],
      [`/v1/threads/${id}/turns`, { role: 'user', content: 'x', model_metadata: { m: tooDeep } }],
      [
        '/v1/threads',
        {
          tool_name: 'chat',
          initial_context: {
            list: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[nested(31)]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
          },
        },
      ],
    ] as const) {
      const response = await call('POST', path, { json });
      expect(response.status, path).toBe(400);
      expect(response.body).toMatchObject({
        error: 'body_too_deep',
        message: expect.stringContaining('more than 64 levels'),
      });
    }
    expect(((await call('GET', `/v1/threads/${id}`)).body as { turns: unknown[] }).turns).toHaveLength(1);
  });

  it('answers 413 for a body over DAEMON_BODY_LIMIT_BYTES and 415 for non-JSON bodies', async () => {
    const big = await call('POST', '/v1/threads', { json: { tool_name: 'x'.repeat(5000) } });
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({
      error: 'body_too_large',
      message: expect.stringContaining('4096 bytes'),
    });

    const plain = await call('POST', '/v1/threads', {
      body: 'tool_name=chat',
      headers: { 'content-type': 'text/plain' },
    });
    expect(plain.status).toBe(415);
    expect(plain.body).toMatchObject({
      error: 'unsupported_media_type',
      message: expect.stringContaining('content-type: application/json'),
    });
    expect((plain.body as { message: string }).message).toContain('text/plain');
  });

  it('answers 400 naming CACHE_MAX_VALUE_BYTES for a thread that would be larger', async () => {
    const response = await call('POST', '/v1/threads', {
      json: { tool_name: 'chat', initial_context: { note: 'x'.repeat(3000) } },
    });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      error: 'invalid_value',
      message: expect.stringMatching(
        /^the thread would be \d+ bytes serialized; the limit \(CACHE_MAX_VALUE_BYTES\) is 2048$/,
      ),
    });
  });

  it('answers 405 with Allow for a known path under the wrong method, 404 for an unknown path', async () => {
    const id = randomUUID();
    for (const [method, path, allow] of [
      ['PUT', `/v1/threads/${id}`, 'DELETE, GET, HEAD'],
      ['PATCH', `/v1/threads/${id}/`, 'DELETE, GET, HEAD'],
      ['DELETE', '/v1/threads', 'POST'],
      ['GET', `/v1/threads/${id}/turns`, 'POST'],
      ['POST', `/v1/threads/${id}/chain`, 'GET, HEAD'],
      ['POST', '/healthz', 'GET, HEAD'],
    ] as const) {
      const response = await call(method, path, method === 'GET' ? {} : { json: {} });
      expect(response.status, `${method} ${path}`).toBe(405);
      expect(response.headers.get('allow'), `${method} ${path}`).toBe(allow);
      expect(response.body).toMatchObject({
        error: 'method_not_allowed',
        message: `${method} is not allowed on ${path}; allowed: ${allow}`,
      });
    }
    const unknown = await call('GET', '/v1/thread');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ error: 'not_found' });
    expect(unknown.headers.get('allow')).toBeNull();
  });

  it('answers 422 for a parent_thread_id that names no live thread', async () => {
    const { body } = await call('POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const deleted = (body as { thread_id: string }).thread_id;
    expect((await call('DELETE', `/v1/threads/${deleted}`)).status).toBe(204);
    for (const parent of [randomUUID(), deleted]) {
      const response = await call('POST', '/v1/threads', {
        json: { tool_name: 'chat', parent_thread_id: parent },
      });
      expect(response.status).toBe(422);
      expect(response.body).toMatchObject({
        error: 'parent_thread_not_found',
        message: expect.stringMatching(NOT_FOUND),
      });
      expect((response.body as { message: string }).message).toContain(parent);
    }
  });

  it('requires the bearer token everywhere except /healthz', async () => {
    const id = randomUUID();
    const missing = await request(daemon, 'GET', `/v1/threads/${id}`);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(missing.body).toMatchObject({
      error: 'unauthorized',
      message: expect.stringContaining('missing bearer'),
    });

    const wrong = await request(daemon, 'POST', '/v1/threads', {
      json: { tool_name: 'x' },
      token: `${TOKEN}x`,
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ error: 'unauthorized', message: 'invalid bearer token' });

    const basic = await request(daemon, 'GET', '/metrics', { headers: { authorization: `Basic ${TOKEN}` } });
    expect(basic.status).toBe(401);

    expect((await request(daemon, 'GET', '/healthz')).status).toBe(200);
  });

  it('reports health and exposes every stats field plus request metrics', async () => {
    const health = await request(daemon, 'GET', '/healthz');
    expect(health.body).toMatchObject({
      status: 'ok',
      store: 'healthy',
      backend: 'sqlite',
      pending: expect.any(Number),
      outboxWritable: true,
    });

    const metrics = await call('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    for (const name of [
      'hybrid_cache_hits_total',
      'hybrid_cache_misses_total',
      'hybrid_cache_loads_total',
      'hybrid_cache_flushed_writes_total',
      'hybrid_cache_coalesced_writes_total',
      'hybrid_cache_retries_total',
      'hybrid_cache_evictions_total',
      'hybrid_cache_dead_letters',
      'hybrid_cache_pending_writes',
      'hybrid_cache_pending_bytes',
      'hybrid_cache_oldest_pending_age_seconds',
      'hybrid_cache_entries',
      'hybrid_cache_bytes',
      'hybrid_cache_outbox_writable 1',
      'hybrid_cache_store_health{state="healthy"} 1',
    ]) {
      expect(metrics.text).toMatch(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')}`, 'm'));
    }
    expect(metrics.text).toMatch(/^hybrid_cache_flushed_writes_total [1-9]\d*$/m);
    expect(metrics.text).toMatch(
      /^http_request_duration_seconds_count\{method="POST",route="\/v1\/threads",status_code="201"\} [1-9]/m,
    );
    expect(metrics.text).toMatch(/^http_request_duration_seconds_count\{[^}]*status_code="401"\} [1-9]/m);
  });

  it('never logs the token', async () => {
    // The 401s' request lines reach this process through a pipe, possibly after their responses.
    await vi.waitFor(
      () => expect(daemon.logs.some((line) => line.msg === 'request' && line.status === 401)).toBe(true),
      { timeout: 5_000 },
    );
    const all = JSON.stringify(daemon.logs) + daemon.stderr();
    expect(all).not.toContain(TOKEN);
  });
});
