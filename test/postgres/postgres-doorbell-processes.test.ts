import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/storage/postgres/migrate.js';
import { flushed, health, threadTurns } from '../processes/daemon-fleet.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from '../processes/daemon-process.js';
import { connectionUrl, createDatabase } from '../support/plain-postgres.js';
import { PostgresCluster } from '../support/postgres.js';

/**
 * Two daemons (real processes, backend postgres) that poll the change feed every 10 minutes and
 * vouch for what they hold for an hour: only the doorbell can make one serve the other's write
 * sooner. Each daemon's rings name its own origin, which that daemon skips and the other must not.
 * A cluster of its own: the feed's safe position follows the cluster-wide xmin.
 */
let cluster: PostgresCluster;
const works = [tempWorkDir(), tempWorkDir()];
let daemons: DaemonProcess[] = [];

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  const url = connectionUrl(await createDatabase(cluster.info, 'doorbell_processes'));
  await migrate({ connectionString: url, max: 1 });
  daemons = await Promise.all(
    works.map((work) =>
      startDaemon(work.dir, {
        CONVERSATION_STORAGE_BACKEND: 'postgres',
        CONVERSATION_STORAGE_STRICT: 'true',
        DATABASE_URL: url,
        CACHE_FLUSH_INTERVAL_MS: '5',
        CACHE_FEED_POLL_INTERVAL_MS: '600000',
        CACHE_MAX_STALENESS_MS: '3600000',
        DAEMON_SHUTDOWN_TIMEOUT_MS: '500',
      }),
    ),
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
  await cluster?.destroy();
  for (const work of works) work.cleanup();
});

async function addTurn(daemon: DaemonProcess, id: string, content: string): Promise<void> {
  const response = await request(daemon, 'POST', `/v1/threads/${id}/turns`, {
    json: { role: 'user', content },
  });
  expect(response.status, response.text).toBe(201);
}

describe('the doorbell between two daemons (real processes), rings naming their origin', () => {
  it("each daemon serves the other's new turn at once, with its own copy cached and the poll 10 minutes away", async () => {
    const [a, b] = daemons as [DaemonProcess, DaemonProcess];
    await expect
      .poll(async () => Promise.all(daemons.map(async (d) => (await health(d)).feed.doorbell)), {
        timeout: 15_000,
        interval: 50,
      })
      .toEqual(['listening', 'listening']);
    const created = await request(a, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    expect(created.status).toBe(201);
    const id = (created.body as { thread_id: string }).thread_id;
    await flushed(a);
    // Both hold the thread in memory from here on, and vouch for it for an hour.
    expect(await threadTurns(b, id)).toEqual([]);

    await addTurn(a, id, 'from a');
    await flushed(a);
    await expect.poll(() => threadTurns(b, id), { timeout: 10_000, interval: 20 }).toEqual(['from a']);

    await addTurn(b, id, 'from b');
    await flushed(b);
    await expect
      .poll(() => threadTurns(a, id), { timeout: 10_000, interval: 20 })
      .toEqual(['from a', 'from b']);
  }, 60_000);
});
