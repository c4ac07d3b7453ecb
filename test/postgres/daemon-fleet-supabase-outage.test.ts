import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushed, health, metric, threadTurns, untilEverySees } from '../processes/daemon-fleet.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from '../processes/daemon-process.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

const MAX_STALENESS_MS = 300;

/**
 * Two daemons on one Supabase database, each through its own gateway, so that one daemon's store
 * can be unreachable (its gateway answers 503) while the other writes through its own.
 */
describe('a daemon whose store is unreachable while another daemon writes, then reachable again', () => {
  let writerEnv: SupabaseEnv;
  let readerEnv: SupabaseEnv;
  const works = [tempWorkDir(), tempWorkDir()];
  let writer: DaemonProcess;
  let reader: DaemonProcess;

  beforeAll(async () => {
    [writerEnv, readerEnv] = await Promise.all([startSupabaseEnv(), startSupabaseEnv()]);
    const daemonEnv = (env: SupabaseEnv) => ({
      CONVERSATION_STORAGE_BACKEND: 'supabase',
      CONVERSATION_STORAGE_STRICT: 'true',
      SUPABASE_URL: env.gateway.url,
      SUPABASE_KEY: env.serviceRoleKey,
      CACHE_FLUSH_INTERVAL_MS: '5',
      CACHE_RETRY_BASE_MS: '10',
      CACHE_RETRY_MAX_MS: '100',
      CACHE_BREAKER_THRESHOLD: '2',
      CACHE_BREAKER_HALF_OPEN_MS: '100',
      CACHE_READ_TIMEOUT_MS: '1000',
      CACHE_WRITE_TIMEOUT_MS: '1000',
      CACHE_FEED_POLL_INTERVAL_MS: '50',
      CACHE_MAX_STALENESS_MS: String(MAX_STALENESS_MS),
      DAEMON_SHUTDOWN_TIMEOUT_MS: '300',
    });
    [writer, reader] = await Promise.all([
      startDaemon((works[0] as { dir: string }).dir, daemonEnv(writerEnv)),
      startDaemon((works[1] as { dir: string }).dir, daemonEnv(readerEnv)),
    ]);
  });

  afterAll(async () => {
    await Promise.all([writer?.stop('SIGKILL'), reader?.stop('SIGKILL')]);
    await Promise.all([writerEnv?.close(), readerEnv?.close()]);
    for (const work of works) work.cleanup();
  });

  it('serves from memory counted as possibly stale and says why; once its store is back no read is older than the bound allows', async () => {
    const created = await request(writer, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (created.body as { thread_id: string }).thread_id;
    expect(
      (
        await request(writer, 'POST', `/v1/threads/${id}/turns`, {
          json: { role: 'user', content: 'before' },
        })
      ).status,
    ).toBe(201);
    let flushedAt = await flushed(writer);
    await untilEverySees([reader], id, ['before'], null, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });
    await expect
      .poll(async () => (await health(reader)).feed.state, { timeout: 5_000, interval: 20 })
      .toBe('following');
    expect((await health(reader)).feed.possiblyStaleReads).toBe(0);

    // The reader's store becomes unreachable: its feed polls fail and its vouch runs out.
    readerEnv.gateway.inject({ kind: 'unavailable' }, { times: Number.POSITIVE_INFINITY });
    await expect
      .poll(async () => (await health(reader)).feed.state, { timeout: 5_000, interval: 20 })
      .toBe('behind');
    const down = await health(reader);
    expect(down.feed.reason).toMatch(/unreachable/);
    expect(down.feed.lagMs).toBeGreaterThanOrEqual(MAX_STALENESS_MS);

    // The writer continues the thread through its own, working, path.
    const during = await request(writer, 'POST', `/v1/threads/${id}/turns`, {
      json: { role: 'assistant', content: 'while the reader was cut off' },
    });
    expect(during.status).toBe(201);
    flushedAt = await flushed(writer);

    // The reader cannot revalidate: memory answers, and says it may be stale.
    expect(await threadTurns(reader, id)).toEqual(['before']);
    const outage = await health(reader);
    expect(outage.feed.possiblyStaleReads).toBeGreaterThan(0);
    expect(outage.feed.state).toBe('behind');
    expect(outage.feed.reason).toMatch(/unreachable/);
    expect(await metric(reader, 'hybrid_cache_possibly_stale_reads_total')).toBeGreaterThan(0);
    // A thread it never cached cannot be answered: the daemon says the store is unavailable, never "not found".
    const unknown = await request(reader, 'GET', '/v1/threads/00000000-0000-4000-8000-000000000000');
    expect(unknown.status).toBe(503);

    // The store comes back: from the bound on, every read shows the writer's turn.
    readerEnv.gateway.faults.clear();
    const backAt = Date.now();
    await untilEverySees([reader], id, ['before', 'while the reader was cut off'], ['before'], {
      flushedAt: backAt,
      maxStalenessMs: MAX_STALENESS_MS,
    });
    await expect
      .poll(async () => (await health(reader)).feed.state, { timeout: 5_000, interval: 20 })
      .toBe('following');
    expect((await health(reader)).feed.reason).toBeUndefined();
  }, 30_000);
});
