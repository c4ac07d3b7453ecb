import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { flushed, metric, roundRobin, untilEverySees } from './daemon-fleet.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from './daemon-process.js';

const MAX_STALENESS_MS = 300;

const started: DaemonProcess[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((daemon) => daemon.stop('SIGKILL')));
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** `count` daemons on one SQLite store file, each with its own data directory (outbox). */
async function fleet(count: number): Promise<DaemonProcess[]> {
  const work = tempWorkDir();
  cleanups.push(work.cleanup);
  const daemons = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const dataDir = join(work.dir, `daemon-${i}`);
      mkdirSync(dataDir);
      const daemon = await startDaemon(dataDir, {
        CONVERSATION_STORAGE_BACKEND: 'sqlite',
        CACHE_DATA_DIR: dataDir,
        CACHE_STORE_PATH: join(work.dir, 'store.db'),
        CACHE_FLUSH_INTERVAL_MS: '5',
        CACHE_FEED_POLL_INTERVAL_MS: '50',
        CACHE_MAX_STALENESS_MS: String(MAX_STALENESS_MS),
        DAEMON_SHUTDOWN_TIMEOUT_MS: '500',
      });
      started.push(daemon);
      return daemon;
    }),
  );
  return daemons;
}

describe('daemons sharing one SQLite store file, each with its own data directory', () => {
  it('two daemons: a thread continued in turn is whole and in one order on both after each flush; a delete on one is seen by the other', async () => {
    const daemons = await fleet(2);
    const id = await roundRobin(daemons, 6, MAX_STALENESS_MS);

    const [a, b] = daemons as [DaemonProcess, DaemonProcess];
    expect((await request(b, 'DELETE', `/v1/threads/${id}`)).status).toBe(204);
    const flushedAt = await flushed(b);
    const written = Array.from({ length: 6 }, (_, t) => `turn ${t} on daemon ${t % 2}`);
    await untilEverySees(daemons, id, null, written, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });
    // The deleted thread cannot be continued on the other daemon either.
    expect(
      (await request(a, 'POST', `/v1/threads/${id}/turns`, { json: { role: 'user', content: 'x' } })).status,
    ).toBe(404);

    // What each daemon read of the other's changes came through the change feed.
    for (const daemon of daemons) {
      expect(await metric(daemon, 'hybrid_cache_feed_changes_total')).toBeGreaterThan(0);
      expect(await metric(daemon, 'hybrid_cache_feed_dropped_entries_total')).toBeGreaterThan(0);
    }
  }, 30_000);

  it('three daemons: every daemon answers the whole thread after each turn, and a delete on one is seen by all', async () => {
    const daemons = await fleet(3);
    const id = await roundRobin(daemons, 6, MAX_STALENESS_MS);

    const [a, , c] = daemons as [DaemonProcess, DaemonProcess, DaemonProcess];
    expect((await request(c, 'DELETE', `/v1/threads/${id}`)).status).toBe(204);
    const flushedAt = await flushed(c);
    const written = Array.from({ length: 6 }, (_, t) => `turn ${t} on daemon ${t % 3}`);
    await untilEverySees(daemons, id, null, written, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });

    // A reader's /metrics shows the changes it followed; no read had to be served unvouched.
    expect(await metric(a, 'hybrid_cache_feed_changes_total')).toBeGreaterThan(0);
    expect(await metric(a, 'hybrid_cache_possibly_stale_reads_total')).toBe(0);
  }, 30_000);
});
