import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHybridCache } from '../../src/cache/create.js';
import { ConversationStore, type ThreadContext, threadKey } from '../../src/conversation/index.js';
import { silentLogger } from '../helpers/cache.js';
import { wholeThread } from '../helpers/threads.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from '../processes/daemon-process.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

describe('conversation turns on Supabase (one row per turn in conversation_turns)', () => {
  let env: SupabaseEnv;
  beforeAll(async () => {
    env = await startSupabaseEnv();
  });
  afterAll(() => env?.close());

  const openConversations = async () => {
    const cache = await createHybridCache({
      storage: env.storage({ table: 'conversation_threads' }),
      outbox: { durability: 'none' },
      flush: { intervalMs: 5 },
      logger: silentLogger,
    });
    return { cache, conversations: new ConversationStore({ cache }) };
  };

  it('reads a thread written whole by the previous release, appends to it, and the view shows the full thread', async () => {
    const id = randomUUID();
    await env.sql(
      `insert into conversation_threads (thread_id, conversation_data, expires_at, version, deleted)
       values ($1, $2::jsonb, now() + interval '1 day', 1000, false)`,
      [threadKey(id), JSON.stringify(wholeThread(id, ['a', 'b']))],
    );
    const { cache, conversations } = await openConversations();
    expect(await conversations.getThread(id)).toEqual(wholeThread(id, ['a', 'b']));
    await conversations.addTurn(id, { role: 'assistant', content: 'c' });
    await cache.flush();
    const expected = await conversations.getThread(id);
    expect(expected?.turns.map((t) => t.content)).toEqual(['a', 'b', 'c']);

    const rows = await env.sql<{ n: number }>(
      'select count(*)::int as n from conversation_turns where thread_id = $1',
      [threadKey(id)],
    );
    expect(rows[0]?.n).toBe(1);
    const [view] = await env.sql<{ data: ThreadContext }>(
      'select conversation_data as data from conversation_threads_with_turns where thread_id = $1',
      [threadKey(id)],
    );
    expect(view?.data).toEqual(expected);
    // The header row was not rewritten.
    const [header] = await env.sql<{ version: string }>(
      'select version from conversation_threads where thread_id = $1',
      [threadKey(id)],
    );
    expect(Number(header?.version)).toBe(1000);
    await cache.close();
  });

  it('refuses the view and the turns table to anon and authenticated', async () => {
    const rows = await env.sql<{ role: string; allowed: boolean }>(
      `select r.rolname as role, has_table_privilege(r.rolname, c.oid, 'select') as allowed
       from pg_class c cross join pg_roles r
       where c.relname in ('conversation_turns', 'conversation_threads_with_turns', 'hybrid_cache_items')
         and r.rolname in ('anon', 'authenticated', 'service_role')`,
    );
    expect(rows).toHaveLength(9);
    for (const row of rows) expect(row.allowed).toBe(row.role === 'service_role');
    const rls = await env.sql<{ rls: boolean }>(
      "select relrowsecurity as rls from pg_class where relname in ('conversation_turns', 'hybrid_cache_items')",
    );
    expect(rls.map((r) => r.rls)).toEqual([true, true]);
  });

  it('three daemon processes adding turns to the same threads concurrently: every acknowledged turn once, one order for all', async () => {
    const works = [tempWorkDir(), tempWorkDir(), tempWorkDir()];
    const daemonEnv = {
      CONVERSATION_STORAGE_BACKEND: 'supabase',
      CONVERSATION_STORAGE_STRICT: 'true',
      SUPABASE_URL: env.gateway.url,
      SUPABASE_KEY: env.serviceRoleKey,
      CACHE_FLUSH_INTERVAL_MS: '10',
      MAX_CONVERSATION_TURNS: '100',
    };
    const daemons: DaemonProcess[] = await Promise.all(works.map((w) => startDaemon(w.dir, daemonEnv)));
    try {
      const ids: string[] = [];
      for (let t = 0; t < 3; t++) {
        const { body } = await request(daemons[0] as DaemonProcess, 'POST', '/v1/threads', {
          json: { tool_name: 'chat' },
        });
        ids.push((body as { thread_id: string }).thread_id);
      }
      // Wait until the threads are in the store, where the other daemons read them.
      await expect
        .poll(
          async () =>
            (
              await env.sql('select 1 from conversation_threads where thread_id = any($1)', [
                ids.map(threadKey),
              ])
            ).length,
          {
            timeout: 10_000,
          },
        )
        .toBe(3);
      const acknowledged: string[] = [];
      await Promise.all(
        daemons.flatMap((daemon, d) =>
          ids.map(async (id) => {
            for (let i = 0; i < 8; i++) {
              const content = `${d}:${id}:${i}`;
              const response = await request(daemon, 'POST', `/v1/threads/${id}/turns`, {
                json: { role: 'user', content },
              });
              if (response.status === 201) acknowledged.push(content);
            }
          }),
        ),
      );
      expect(acknowledged).toHaveLength(3 * 3 * 8);
      // SIGTERM flushes each daemon's backlog to the store.
      for (const daemon of daemons) expect(await daemon.stop('SIGTERM')).toEqual({ code: 0, signal: null });

      // Readers: a restarted daemon, a fresh in-process cache, and SQL through the view.
      const reader = await startDaemon((works[0] as { dir: string }).dir, daemonEnv);
      daemons.push(reader);
      const { cache, conversations } = await openConversations();
      for (const id of ids) {
        const { body } = await request(reader, 'GET', `/v1/threads/${id}`);
        const order = (body as ThreadContext).turns.map((t) => t.content);
        expect((await conversations.getThread(id))?.turns.map((t) => t.content)).toEqual(order);
        expect([...order].sort()).toEqual(acknowledged.filter((c) => c.includes(`:${id}:`)).sort());
        const [view] = await env.sql<{ data: ThreadContext }>(
          'select conversation_data as data from conversation_threads_with_turns where thread_id = $1',
          [threadKey(id)],
        );
        expect(view?.data.turns.map((t) => t.content)).toEqual(order);
      }
      await cache.close();
    } finally {
      await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
      for (const work of works) work.cleanup();
    }
  });
});
