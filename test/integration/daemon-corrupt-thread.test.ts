import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { threadKey } from '../../src/conversation/index.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from './daemon-process.js';

/** A thread whose stored JSON is damaged (disk fault, manual edit) is reported as such, and can be deleted. */

const work = tempWorkDir();
let daemon: DaemonProcess | undefined;
afterEach(async () => {
  await daemon?.stop('SIGKILL');
  work.cleanup();
});

describe('a damaged stored thread', () => {
  it('answers 500 corrupt_thread saying what to do, keeps answering, and DELETE clears it', async () => {
    daemon = await startDaemon(work.dir, {});
    const created = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (created.body as { thread_id: string }).thread_id;
    expect(await daemon.stop('SIGTERM')).toEqual({ code: 0, signal: null }); // flushed to store.db

    const store = new Database(join(work.dir, 'data', 'store.db'));
    const damaged = store
      .prepare("UPDATE cache_entries SET json = '{\"torn' WHERE key = ?")
      .run(threadKey(id));
    store.close();
    expect(damaged.changes).toBe(1);

    daemon = await startDaemon(work.dir, {});
    for (let attempt = 0; attempt < 2; attempt++) {
      const read = await request(daemon, 'GET', `/v1/threads/${id}`);
      expect(read.status).toBe(500);
      expect(read.body).toEqual({
        error: 'corrupt_thread',
        message:
          'the stored thread is damaged (not valid JSON) and cannot be read; delete it (DELETE /v1/threads/:id) or restore the store from a backup',
      });
    }
    expect((await request(daemon, 'DELETE', `/v1/threads/${id}`)).status).toBe(204);
    expect((await request(daemon, 'GET', `/v1/threads/${id}`)).status).toBe(404);
  });
});
