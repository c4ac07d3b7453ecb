import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { threadKey } from '../../src/conversation/index.js';
import { SqliteStorage } from '../../src/index.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from './daemon-process.js';

const CLOCK_OFFSET = fileURLToPath(new URL('../support/clock-offset.mjs', import.meta.url));
const HOUR_MS = 3_600_000;
/** Environment that puts a daemon's wall clock an hour behind this process's. */
const HOUR_BEHIND = { NODE_OPTIONS: `--import=${CLOCK_OFFSET}`, CLOCK_OFFSET_MS: String(-HOUR_MS) };

async function drained(daemon: DaemonProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const health = await request(daemon, 'GET', '/healthz');
    if ((health.body as { pending: number }).pending === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the daemon did not flush its backlog');
}

describe('daemon: a DELETE from a host whose clock is an hour behind, on a fresh data dir', () => {
  const dirs: { cleanup(): void }[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.cleanup();
  });

  it('stays deleted after the flush and after a restart', async () => {
    const work = tempWorkDir();
    dirs.push(work);
    const cwd = work.dir;
    const data = join(cwd, 'data');

    const first = await startDaemon(cwd, {});
    const created = await request(first, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    expect(created.status).toBe(201);
    const id = (created.body as { thread_id: string }).thread_id;
    expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    // The outbox moved aside (as the corruption message advises, or a new host): the next daemon
    // starts with no record of the versions it minted before.
    renameSync(join(data, 'outbox.db'), join(data, 'outbox.db.moved'));
    for (const suffix of ['-wal', '-shm']) rmSync(join(data, `outbox.db${suffix}`), { force: true });

    const behind = await startDaemon(cwd, HOUR_BEHIND);
    try {
      const listening = behind.logs.find((line) => line.msg === 'listening');
      expect(listening?.time as number).toBeLessThan(Date.now() - HOUR_MS / 2); // its clock really is behind
      expect((await request(behind, 'DELETE', `/v1/threads/${id}`)).status).toBe(204);
      expect((await request(behind, 'GET', `/v1/threads/${id}`)).status).toBe(404);
      await drained(behind);
      expect((await request(behind, 'GET', `/v1/threads/${id}`)).status).toBe(404);
      expect(behind.logs.filter((line) => line.msg.includes('lost to a newer write'))).toEqual([]);
    } finally {
      expect(await behind.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    }

    const store = new SqliteStorage({ path: join(data, 'store.db') });
    const key = threadKey(id);
    const stored = (await store.getMany([key])).get(key);
    await store.close();
    expect(stored?.json).toBeNull(); // a tombstone

    const restarted = await startDaemon(cwd, HOUR_BEHIND);
    try {
      expect((await request(restarted, 'GET', `/v1/threads/${id}`)).status).toBe(404);
    } finally {
      await restarted.stop('SIGKILL');
    }
  }, 90_000);
});
