import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from './daemon-process.js';

describe('daemon whose outbox file is deleted while it runs', () => {
  const work = tempWorkDir();
  let daemon: DaemonProcess;

  beforeAll(async () => {
    daemon = await startDaemon(work.dir, { CACHE_DATA_DIR: join(work.dir, 'data') });
  });

  afterAll(async () => {
    await daemon?.stop('SIGTERM');
    work.cleanup();
  });

  it('refuses writes with 503 and says why in /healthz, while reads still answer', async () => {
    const created = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    expect(created.status).toBe(201);
    const { thread_id: id } = created.body as { thread_id: string };
    expect((await request(daemon, 'GET', '/healthz')).status).toBe(200);

    const outbox = join(work.dir, 'data', 'outbox.db');
    unlinkSync(outbox);
    unlinkSync(`${outbox}-wal`);

    const refused = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({
      error: 'outbox_unwritable',
      message: expect.stringMatching(/deleted or replaced/),
    });
    const health = await request(daemon, 'GET', '/healthz');
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({
      status: 'unavailable',
      outboxWritable: false,
      reason: expect.stringMatching(/deleted or replaced/),
    });
    expect((await request(daemon, 'GET', `/v1/threads/${id}`)).status).toBe(200);
  });
});
