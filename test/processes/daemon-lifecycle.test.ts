import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request, spawnDaemon, startDaemon, tempWorkDir } from './daemon-process.js';

const FATAL = 60;

describe('daemon process lifecycle', () => {
  const dirs: { cleanup(): void }[] = [];
  const workDir = () => {
    const work = tempWorkDir();
    dirs.push(work);
    return work.dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.cleanup();
  });

  it('answers 503 on writes and /healthz when the outbox is full, and recovers once it has room', async () => {
    const cwd = workDir();
    const daemon = await startDaemon(cwd, {
      CACHE_OUTBOX_MAX_BYTES: '65536',
      // Flushes held back so that accepted writes stay in the outbox.
      CACHE_FLUSH_INTERVAL_MS: '600000',
      CACHE_FLUSH_BATCH_SIZE: '1000',
    });
    try {
      const big = 'x'.repeat(20_000);
      let refused: Awaited<ReturnType<typeof request>> | undefined;
      const accepted: string[] = [];
      for (let i = 0; i < 10 && !refused; i++) {
        const created = await request(daemon, 'POST', '/v1/threads', {
          json: { tool_name: 'chat', initial_context: { note: big } },
        });
        if (created.status === 201) accepted.push((created.body as { thread_id: string }).thread_id);
        else refused = created;
      }
      expect(refused?.status).toBe(503);
      expect(refused?.body).toMatchObject({ error: 'outbox_unwritable' });
      const health = await request(daemon, 'GET', '/healthz');
      expect(health.status).toBe(503);
      expect(health.body).toMatchObject({ status: 'unavailable' });
      // Everything accepted before the outbox filled up is still served.
      for (const id of accepted) expect((await request(daemon, 'GET', `/v1/threads/${id}`)).status).toBe(200);
      // A small write fits in the space left, and the daemon reports healthy again.
      const small = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
      expect(small.status).toBe(201);
      expect((await request(daemon, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await daemon.stop('SIGKILL');
    }
  });

  it('keeps threads across SIGKILL: a restart reads them back intact', async () => {
    const cwd = workDir();
    // Flushes held back: what is acknowledged before the kill lives only in the outbox.
    const first = await startDaemon(cwd, {
      CACHE_FLUSH_INTERVAL_MS: '600000',
      CACHE_FLUSH_BATCH_SIZE: '1000',
    });
    const { body } = await request(first, 'POST', '/v1/threads', {
      json: { tool_name: 'chat', initial_context: { prompt: 'remember me' } },
    });
    const id = (body as { thread_id: string }).thread_id;
    for (const content of ['first', 'second', 'third']) {
      const turn = await request(first, 'POST', `/v1/threads/${id}/turns`, {
        json: { role: 'user', content },
      });
      expect(turn.status).toBe(201);
    }
    const before = await request(first, 'GET', `/v1/threads/${id}`);
    expect((await request(first, 'GET', '/healthz')).body).toMatchObject({ pending: 1 });
    expect((await first.stop('SIGKILL')).signal).toBe('SIGKILL');

    // Relative CACHE_DATA_DIR default: ./data under the working directory.
    expect(existsSync(join(cwd, 'data', 'store.db'))).toBe(true);
    expect(existsSync(join(cwd, 'data', 'outbox.db'))).toBe(true);

    const second = await startDaemon(cwd, {});
    try {
      expect(second.logs).toContainEqual(
        expect.objectContaining({ msg: 'replayed unflushed writes from the outbox', replayed: 1 }),
      );
      const after = await request(second, 'GET', `/v1/threads/${id}`);
      expect(after.status).toBe(200);
      expect(after.body).toEqual(before.body);
      expect((after.body as { turns: { content: string }[] }).turns.map((t) => t.content)).toEqual([
        'first',
        'second',
        'third',
      ]);
      const started = second.logs.find((line) => line.msg === 'listening');
      expect(started).toMatchObject({
        backend: 'sqlite',
        store: join(cwd, 'data', 'store.db'),
        outbox: join(cwd, 'data', 'outbox.db'),
      });
    } finally {
      await second.stop('SIGKILL');
    }
  });

  it('on SIGTERM drains, logs what stayed in the outbox, exits 0, and the data is there on restart', async () => {
    const cwd = workDir();
    const daemon = await startDaemon(cwd, { CACHE_DATA_DIR: 'state' });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { body } = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: `t${i}` } });
      ids.push((body as { thread_id: string }).thread_id);
    }
    const exit = await daemon.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    const messages = daemon.logs.map((line) => line.msg);
    expect(messages).toContain('shutting down: refusing new requests, flushing writes to the store');
    expect(messages).toContain('every write reached the store');
    expect(messages.at(-1)).toBe('stopped');

    const again = await startDaemon(cwd, { CACHE_DATA_DIR: 'state' });
    try {
      for (const [i, id] of ids.entries()) {
        const read = await request(again, 'GET', `/v1/threads/${id}`);
        expect(read.body).toMatchObject({ thread_id: id, tool_name: `t${i}` });
      }
    } finally {
      await again.stop('SIGKILL');
    }
  });

  it('refuses to bind a non-loopback address without DAEMON_TOKEN', async () => {
    const proc = spawnDaemon(workDir(), { DAEMON_HOST: '0.0.0.0' });
    expect((await proc.exited).code).toBe(1);
    const fatal = proc.logs.filter((line) => line.level === FATAL);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]?.msg).toMatch(/DAEMON_HOST=0\.0\.0\.0 is not a loopback address: set DAEMON_TOKEN/);
    expect(proc.logs.some((line) => line.msg === 'listening')).toBe(false);
  });

  it('stops on an invalid variable with one message naming it and the accepted values', async () => {
    const cwd = workDir();
    const proc = spawnDaemon(cwd, { CACHE_DURABILITY: 'sometimes' });
    expect((await proc.exited).code).toBe(1);
    expect(proc.logs).toHaveLength(1);
    expect(proc.logs[0]).toMatchObject({
      level: FATAL,
      msg: 'invalid configuration: CACHE_DURABILITY="sometimes" is invalid; accepted: none, process, fsync',
    });
    expect(existsSync(join(cwd, 'data'))).toBe(false);
  });
});
