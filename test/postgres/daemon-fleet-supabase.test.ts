import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushed, health, metric, roundRobin, untilEverySees } from '../processes/daemon-fleet.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from '../processes/daemon-process.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

const MAX_STALENESS_MS = 300;

describe('three daemons on Supabase (test gateway), following each other through the RPC change feed', () => {
  let env: SupabaseEnv;
  const works = [tempWorkDir(), tempWorkDir(), tempWorkDir()];
  let daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    env = await startSupabaseEnv();
    const daemonEnv = {
      CONVERSATION_STORAGE_BACKEND: 'supabase',
      CONVERSATION_STORAGE_STRICT: 'true',
      SUPABASE_URL: env.gateway.url,
      SUPABASE_KEY: env.serviceRoleKey,
      CACHE_FLUSH_INTERVAL_MS: '5',
      CACHE_FEED_POLL_INTERVAL_MS: '50',
      CACHE_MAX_STALENESS_MS: String(MAX_STALENESS_MS),
      DAEMON_SHUTDOWN_TIMEOUT_MS: '500',
    };
    daemons = await Promise.all(works.map((work) => startDaemon(work.dir, daemonEnv)));
  });

  afterAll(async () => {
    await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
    await env?.close();
    for (const work of works) work.cleanup();
  });

  it('a thread continued round-robin is whole, each turn once and in one order, on every daemon after each flush; a delete on one is seen by all', async () => {
    const id = await roundRobin(daemons, 6, MAX_STALENESS_MS);

    const [a, b] = daemons as [DaemonProcess, DaemonProcess, DaemonProcess];
    expect((await request(b, 'DELETE', `/v1/threads/${id}`)).status).toBe(204);
    const flushedAt = await flushed(b);
    const written = Array.from({ length: 6 }, (_, t) => `turn ${t} on daemon ${t % 3}`);
    await untilEverySees(daemons, id, null, written, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });

    for (const daemon of daemons) {
      expect((await health(daemon)).feed).toMatchObject({ state: 'following', possiblyStaleReads: 0 });
      expect(await metric(daemon, 'hybrid_cache_feed_changes_total')).toBeGreaterThan(0);
    }
    expect(await metric(a, 'hybrid_cache_feed_dropped_entries_total')).toBeGreaterThan(0);
  }, 30_000);
});
