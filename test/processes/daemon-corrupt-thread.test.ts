import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { threadKey } from '../../src/conversation/index.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from './daemon-process.js';

/**
 * A thread whose stored JSON is damaged (disk fault, manual edit) is reported as such through the
 * real HTTP API, naming the thread to delete, on every route that meets it; and it can be deleted.
 */

let work: ReturnType<typeof tempWorkDir>;
let daemon: DaemonProcess | undefined;
beforeEach(() => {
  work = tempWorkDir();
});
afterEach(async () => {
  await daemon?.stop('SIGKILL');
  daemon = undefined;
  work.cleanup();
});

const damagedBody = (id: string) => ({
  error: 'corrupt_thread',
  message: `the stored thread '${id}' is damaged (not valid JSON) and cannot be read; delete it (DELETE /v1/threads/${id}) or restore the store from a backup`,
});

async function createThread(json: Record<string, unknown>): Promise<string> {
  const created = await request(daemon as DaemonProcess, 'POST', '/v1/threads', { json });
  expect(created.status).toBe(201);
  return (created.body as { thread_id: string }).thread_id;
}

/** Stops the daemon cleanly (everything flushed to store.db), runs `damage` on the store, starts a new daemon. */
async function damageStoreAndRestart(damage: (store: Database.Database) => number): Promise<void> {
  expect(await daemon?.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  const store = new Database(join(work.dir, 'data', 'store.db'));
  try {
    expect(damage(store)).toBe(1);
  } finally {
    store.close();
  }
  daemon = await startDaemon(work.dir, {});
}

describe('a damaged stored thread', () => {
  it('answers 500 corrupt_thread naming the thread on every route that reads it, keeps answering, and DELETE clears it', async () => {
    daemon = await startDaemon(work.dir, {});
    const parent = await createThread({ tool_name: 'chat' });
    const child = await createThread({ tool_name: 'chat', parent_thread_id: parent });
    await damageStoreAndRestart(
      (store) =>
        store.prepare("UPDATE cache_entries SET json = '{\"torn' WHERE key = ?").run(threadKey(parent))
          .changes,
    );
    const live = daemon as DaemonProcess;

    for (let attempt = 0; attempt < 2; attempt++) {
      const read = await request(live, 'GET', `/v1/threads/${parent}`);
      expect(read.status).toBe(500);
      expect(read.body).toEqual(damagedBody(parent));
    }
    const turn = await request(live, 'POST', `/v1/threads/${parent}/turns`, {
      json: { role: 'user', content: 'hello' },
    });
    expect(turn.status).toBe(500);
    expect(turn.body).toEqual(damagedBody(parent));
    // The damaged thread is an ancestor here: the answer names it, not the thread asked for.
    const chain = await request(live, 'GET', `/v1/threads/${child}/chain`);
    expect(chain.status).toBe(500);
    expect(chain.body).toEqual(damagedBody(parent));
    const continuation = await request(live, 'POST', '/v1/threads', {
      json: { tool_name: 'chat', parent_thread_id: parent },
    });
    expect(continuation.status).toBe(500);
    expect(continuation.body).toEqual(damagedBody(parent));
    // The operator is told which key to repair, at error level (an operator must act).
    expect(live.logs.some((line) => line.level === 50 && String(line.msg).includes(parent))).toBe(true);
    // The child itself reads fine.
    expect((await request(live, 'GET', `/v1/threads/${child}`)).status).toBe(200);

    expect((await request(live, 'DELETE', `/v1/threads/${parent}`)).status).toBe(204);
    expect((await request(live, 'GET', `/v1/threads/${parent}`)).status).toBe(404);
    const healed = await request(live, 'GET', `/v1/threads/${child}/chain`);
    expect(healed.status).toBe(200);
    expect(
      (healed.body as { threads: Array<{ thread_id: string }> }).threads.map((t) => t.thread_id),
    ).toEqual([child]);
  });

  it('answers 500 corrupt_thread for a thread with a damaged turn', async () => {
    daemon = await startDaemon(work.dir, {});
    const id = await createThread({ tool_name: 'chat' });
    const added = await request(daemon, 'POST', `/v1/threads/${id}/turns`, {
      json: { role: 'user', content: 'hello' },
    });
    expect(added.status).toBe(201);
    await damageStoreAndRestart(
      (store) => store.prepare("UPDATE cache_items SET json = '[' WHERE key = ?").run(threadKey(id)).changes,
    );

    const read = await request(daemon as DaemonProcess, 'GET', `/v1/threads/${id}`);
    expect(read.status).toBe(500);
    expect(read.body).toEqual(damagedBody(id));
  });
});
