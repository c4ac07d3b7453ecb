import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from './daemon-process.js';

describe('daemon whose outbox file is deleted while it runs', () => {
  const work = tempWorkDir();
  const env = { CACHE_DATA_DIR: join(work.dir, 'data') };
  const outbox = join(work.dir, 'data', 'outbox.db');
  let daemon: DaemonProcess;

  beforeAll(async () => {
    daemon = await startDaemon(work.dir, env);
  });

  afterAll(async () => {
    await daemon?.stop('SIGTERM');
    work.cleanup();
  });

  it('writes a new outbox from memory and keeps taking writes; /healthz, /metrics and the log say so', async () => {
    const created = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    expect(created.status).toBe(201);
    const { thread_id: before } = created.body as { thread_id: string };
    expect((await request(daemon, 'GET', '/healthz')).body).toMatchObject({ outboxHeals: 0 });

    for (const suffix of ['', '-wal', '-shm']) rmSync(`${outbox}${suffix}`, { force: true });

    // The write that finds the file gone is not refused: it waits for the new file and goes into it.
    const after = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    expect(after.status).toBe(201);
    const turn = await request(daemon, 'POST', `/v1/threads/${before}/turns`, {
      json: { role: 'user', content: 'after the heal' },
    });
    expect(turn.status).toBe(201);

    const health = await request(daemon, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', outboxWritable: true, outboxHeals: 1 });
    const metrics = await request(daemon, 'GET', '/metrics');
    expect(metrics.text.split('\n')).toContain('hybrid_cache_outbox_heals_total 1');
    expect(metrics.text.split('\n')).toContain('hybrid_cache_outbox_writable 1');
    expect(daemon.logs.filter((line) => /new one was written at its path/.test(line.msg))).toEqual([
      expect.objectContaining({ path: outbox }),
    ]);
    expect(existsSync(outbox)).toBe(true);

    // kill -9, and a new daemon over the same directory opens the healed outbox and serves both threads.
    expect(await daemon.stop('SIGKILL')).toMatchObject({ signal: 'SIGKILL' });
    daemon = await startDaemon(work.dir, env);
    const { thread_id: later } = after.body as { thread_id: string };
    const read = await request(daemon, 'GET', `/v1/threads/${before}`);
    expect(read.status).toBe(200);
    expect((read.body as { turns: Array<{ content: string }> }).turns.map((t) => t.content)).toEqual([
      'after the heal',
    ]);
    expect((await request(daemon, 'GET', `/v1/threads/${later}`)).status).toBe(200);
    expect((await request(daemon, 'GET', '/healthz')).body).toMatchObject({ outboxWritable: true });
  });

  it('refuses writes with 503 and says why in /healthz while no new outbox can be written, and is healthy again once it is', async () => {
    const created = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const { thread_id: id } = created.body as { thread_id: string };
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${outbox}${suffix}`, { force: true });
    writeFileSync(outbox, 'someone else put this file here');

    const refused = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({
      error: 'outbox_unwritable',
      message: expect.stringMatching(/deleted or replaced.*could not be written there/),
    });
    const health = await request(daemon, 'GET', '/healthz');
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({
      status: 'unavailable',
      outboxWritable: false,
      reason: expect.stringMatching(/could not be written there/),
    });
    expect((await request(daemon, 'GET', `/v1/threads/${id}`)).status).toBe(200);

    // The cause goes away: the heal is tried again on the maintenance tick, and succeeds.
    rmSync(outbox);
    await vi.waitFor(async () => expect((await request(daemon, 'GET', '/healthz')).status).toBe(200), {
      timeout: 10_000,
      interval: 100,
    });
    expect((await request(daemon, 'GET', '/healthz')).body).toMatchObject({
      outboxWritable: true,
      outboxHeals: 1,
    });
    expect((await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } })).status).toBe(201);
  });
});
