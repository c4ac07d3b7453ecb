import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from '../processes/daemon-process.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

interface Health {
  status: string;
  store: string;
  pending: number;
}

const metricValue = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('daemon on the supabase backend (test gateway) through an outage', () => {
  const work = tempWorkDir();
  let env: SupabaseEnv;
  let daemon: DaemonProcess | undefined;
  let daemonEnv: Record<string, string>;

  const health = async (d: DaemonProcess) => {
    const response = await request(d, 'GET', '/healthz');
    return { status: response.status, body: response.body as Health };
  };
  const metrics = async (d: DaemonProcess) => (await request(d, 'GET', '/metrics')).text;
  const storedThread = async (id: string) => {
    const rows = await env.sql<{ data: { turns: { content: string }[] } }>(
      'select conversation_data as data from conversation_threads_with_turns where thread_id = $1 and not deleted',
      [`thread:${id}`],
    );
    return rows[0]?.data;
  };

  beforeAll(async () => {
    env = await startSupabaseEnv();
    daemonEnv = {
      CONVERSATION_STORAGE_BACKEND: 'supabase',
      CONVERSATION_STORAGE_STRICT: 'true',
      SUPABASE_URL: env.gateway.url,
      SUPABASE_KEY: env.serviceRoleKey,
      CACHE_FLUSH_INTERVAL_MS: '10',
      CACHE_RETRY_BASE_MS: '10',
      CACHE_RETRY_MAX_MS: '100',
      CACHE_BREAKER_THRESHOLD: '2',
      CACHE_BREAKER_HALF_OPEN_MS: '100',
      CACHE_READ_TIMEOUT_MS: '2000',
      CACHE_WRITE_TIMEOUT_MS: '1000',
      DAEMON_SHUTDOWN_TIMEOUT_MS: '300',
    };
    daemon = await startDaemon(work.dir, daemonEnv);
  });

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await env?.close();
    work.cleanup();
  });

  it('stays writable and reports the outage in /healthz and /metrics, then drains by itself', async () => {
    const d = daemon as DaemonProcess;
    expect(d.logs.find((line) => line.msg === 'listening')).toMatchObject({
      backend: 'supabase',
      supabaseUrl: env.gateway.url,
    });
    const { body } = await request(d, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (body as { thread_id: string }).thread_id;
    await expect.poll(() => storedThread(id), { timeout: 10_000 }).toMatchObject({ turns: [] });
    expect(await health(d)).toMatchObject({ status: 200, body: { status: 'ok', store: 'healthy' } });

    env.gateway.inject({ kind: 'unavailable', retryAfterSeconds: 0 }, { times: Number.POSITIVE_INFINITY });
    try {
      const turn = await request(d, 'POST', `/v1/threads/${id}/turns`, {
        json: { role: 'user', content: 'during the outage' },
      });
      expect(turn.status).toBe(201);
      await expect.poll(async () => (await health(d)).body.store, { timeout: 10_000 }).not.toBe('healthy');
      const during = await health(d);
      expect(during.status).toBe(200);
      expect(during.body).toMatchObject({ status: 'ok', pending: 1 });

      const text = await metrics(d);
      expect(metricValue(text, 'hybrid_cache_store_health{state="healthy"}')).toBe(0);
      // The breaker may move from degraded to offline between the two reads: one of them is the state.
      const unhealthy =
        (metricValue(text, 'hybrid_cache_store_health{state="degraded"}') ?? 0) +
        (metricValue(text, 'hybrid_cache_store_health{state="offline"}') ?? 0);
      expect(unhealthy).toBe(1);
      expect(metricValue(text, 'hybrid_cache_pending_writes')).toBe(1);
      await expect
        .poll(async () => metricValue(await metrics(d), 'hybrid_cache_retries_total'), { timeout: 10_000 })
        .toBeGreaterThan(0);
      expect(metricValue(text, 'hybrid_cache_outbox_writable')).toBe(1);

      // Cached threads still read; a miss the store cannot answer is a 503, never a false 404.
      const cached = await request(d, 'GET', `/v1/threads/${id}`);
      expect((cached.body as { turns: unknown[] }).turns).toHaveLength(1);
      const miss = await request(d, 'GET', `/v1/threads/${randomUUID()}`);
      expect(miss.status).toBe(503);
      expect(miss.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(miss.body).toMatchObject({
        error: 'storage_unavailable',
        message: expect.stringContaining('unreachable'),
      });
      expect((await storedThread(id))?.turns).toEqual([]);
    } finally {
      env.gateway.faults.clear();
    }

    await expect
      .poll(async () => (await health(d)).body, { timeout: 15_000 })
      .toMatchObject({
        store: 'healthy',
        pending: 0,
      });
    expect((await storedThread(id))?.turns.map((t) => t.content)).toEqual(['during the outage']);
    expect(JSON.stringify(d.logs) + d.stderr()).not.toContain(env.serviceRoleKey);
  });

  it('on SIGTERM during an outage exits 0 and keeps the backlog in the outbox for the next start', async () => {
    const d = daemon as DaemonProcess;
    const { body } = await request(d, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (body as { thread_id: string }).thread_id;
    await expect.poll(() => storedThread(id), { timeout: 10_000 }).toBeDefined();

    env.gateway.inject({ kind: 'unavailable' }, { times: Number.POSITIVE_INFINITY });
    try {
      const turn = await request(d, 'POST', `/v1/threads/${id}/turns`, {
        json: { role: 'user', content: 'kept' },
      });
      expect(turn.status).toBe(201);
      expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expect(d.logs).toContainEqual(
        expect.objectContaining({
          pending: 1,
          msg: expect.stringContaining('stay in the outbox and flush on the next start'),
        }),
      );
      daemon = undefined;
      expect((await storedThread(id))?.turns).toEqual([]);
    } finally {
      env.gateway.faults.clear();
    }

    daemon = await startDaemon(work.dir, daemonEnv);
    await expect
      .poll(() => storedThread(id), { timeout: 15_000 })
      .toMatchObject({ turns: [{ content: 'kept' }] });
  });
});
