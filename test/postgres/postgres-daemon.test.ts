import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from '../processes/daemon-process.js';
import { connectionUrl, migratedDatabase } from '../support/plain-postgres.js';
import type { PostgresConnectionInfo } from '../support/postgres.js';

describe('daemon on the postgres backend (DATABASE_URL)', () => {
  const work = tempWorkDir();
  let db: PostgresConnectionInfo;
  let daemon: DaemonProcess | undefined;

  beforeAll(async () => {
    db = await migratedDatabase();
    daemon = await startDaemon(work.dir, {
      CONVERSATION_STORAGE_BACKEND: 'postgres',
      CONVERSATION_STORAGE_STRICT: 'true',
      DATABASE_URL: connectionUrl(db),
      CACHE_FLUSH_INTERVAL_MS: '10',
      DAEMON_SHUTDOWN_TIMEOUT_MS: '2000',
      LOG_LEVEL: 'debug',
    });
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    work.cleanup();
  });

  it('stores threads and turns in PostgreSQL, and logs the database without its password', async () => {
    const d = daemon as DaemonProcess;
    expect(d.logs.find((line) => line.msg === 'listening')).toMatchObject({
      backend: 'postgres',
      database: `${db.host}:${db.port}/${db.database}`,
    });
    const created = await request(d, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (created.body as { thread_id: string }).thread_id;
    expect(
      (await request(d, 'POST', `/v1/threads/${id}/turns`, { json: { role: 'user', content: 'hi' } })).status,
    ).toBe(201);
    const client = new pg.Client(db);
    await client.connect();
    try {
      const stored = async () =>
        (
          await client.query<{ data: { turns: { content: string }[] } }>(
            'select conversation_data as data from conversation_threads_with_turns where thread_id = $1 and not deleted',
            [`thread:${id}`],
          )
        ).rows[0]?.data.turns.map((turn) => turn.content);
      await expect.poll(stored, { timeout: 10_000 }).toEqual(['hi']);
    } finally {
      await client.end();
    }
    // SIGTERM: drains, closes the store (and its pool), exits cleanly.
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const everything = JSON.stringify(d.logs) + d.stderr();
    expect(everything).not.toContain(db.password);
  });
});
