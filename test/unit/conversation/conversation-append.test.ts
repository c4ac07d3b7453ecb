import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHybridCache } from '../../../src/cache/create.js';
import { ConversationStore, threadKey } from '../../../src/conversation/index.js';
import { SqliteStorage } from '../../../src/storage/sqlite/sqlite-storage.js';
import { SqliteOutbox } from '../../../src/sync/outbox/sqlite-outbox.js';
import { silentLogger } from '../../helpers/cache.js';
import { wholeThread } from '../../helpers/threads.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'conversation-append-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const openStack = async (outbox = 'outbox.db') => {
  const storage = new SqliteStorage({ path: join(dir, 'store.db') });
  const cache = await createHybridCache({
    storage,
    outbox: { path: join(dir, outbox) },
    flush: { intervalMs: 5 },
    logger: silentLogger,
  });
  return { storage, cache, conversations: new ConversationStore({ cache }) };
};

describe('conversations as a header plus appended turns', () => {
  it('keeps threads written whole by the previous release (store rows and pending outbox rows) and appends to them', async () => {
    const stored = randomUUID();
    const pending = randomUUID();
    // The store at schema 2 with a whole thread, as the previous release wrote it.
    const raw = new Database(join(dir, 'store.db'));
    raw.exec(`
      CREATE TABLE cache_entries (
        key TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, json TEXT, expires_at INTEGER);
      CREATE INDEX cache_entries_version ON cache_entries (version);
      PRAGMA application_id = ${0x68637374};
      PRAGMA user_version = 2;`);
    raw
      .prepare('INSERT INTO cache_entries VALUES (?, ?, ?, NULL)')
      .run(threadKey(stored), 1_000, JSON.stringify(wholeThread(stored, ['a', 'b'])));
    raw.close();
    // An outbox at schema 2 holding an unflushed whole-thread write.
    const old = SqliteOutbox.open({ path: join(dir, 'outbox.db'), durability: 'process' });
    const json = JSON.stringify(wholeThread(pending, ['x']));
    await old.append({ key: threadKey(pending), version: 2_000, json, expiresAt: null, queuedAt: 1 });
    old.close();
    const rawOutbox = new Database(join(dir, 'outbox.db'));
    rawOutbox.exec(
      'DROP TABLE pending_items; DROP TABLE reserved_versions; ALTER TABLE dead_letters DROP COLUMN item_id; ALTER TABLE pending DROP COLUMN ends_log_at; ALTER TABLE pending DROP COLUMN first_version; PRAGMA user_version = 2;',
    );
    rawOutbox.close();

    const first = await openStack();
    expect((await first.conversations.getThread(stored))?.turns.map((t) => t.content)).toEqual(['a', 'b']);
    expect(await first.conversations.getThread(pending)).toEqual(wholeThread(pending, ['x']));
    const added = await first.conversations.addTurn(stored, { role: 'user', content: 'c' });
    await first.conversations.addTurn(pending, { role: 'assistant', content: 'y' });
    expect(added.turns.map((t) => t.content)).toEqual(['a', 'b', 'c']);
    expect(added.last_updated_at).toBe(added.turns[2]?.timestamp);
    await first.cache.close();
    await first.storage.close();

    const second = await openStack();
    expect((await second.conversations.getThread(stored))?.turns.map((t) => t.content)).toEqual([
      'a',
      'b',
      'c',
    ]);
    expect((await second.conversations.getThread(pending))?.turns.map((t) => t.content)).toEqual(['x', 'y']);
    // The old row was not rewritten: its value is the whole thread as it was, the new turn one item.
    const row = (await second.storage.getMany([threadKey(stored)])).get(threadKey(stored));
    expect(row?.version).toBe(1_000);
    expect(row?.items?.map((i) => JSON.parse(i.json).content)).toEqual(['c']);
    await second.cache.close();
    await second.storage.close();
  });

  it('sends each turn to the store once, never the thread again', async () => {
    const stack = await openStack();
    const id = await stack.conversations.createThread({ tool_name: 'chat' });
    await stack.cache.flush();
    const headerVersion = (await stack.storage.getMany([threadKey(id)])).get(threadKey(id))?.version;
    for (let i = 0; i < 10; i++) await stack.conversations.addTurn(id, { role: 'user', content: `t${i}` });
    await stack.cache.flush();
    const row = (await stack.storage.getMany([threadKey(id)])).get(threadKey(id));
    expect(row?.version).toBe(headerVersion);
    expect(JSON.parse(row?.json ?? 'null').turns).toEqual([]);
    expect(row?.items).toHaveLength(10);
    await stack.cache.close();
    await stack.storage.close();
  });

  it('three cache instances adding turns to the same threads concurrently keep every turn once, in one order for all', async () => {
    const stacks = [await openStack('a.db'), await openStack('b.db'), await openStack('c.db')];
    const ids: string[] = [];
    for (let t = 0; t < 4; t++)
      ids.push(await (stacks[0] as (typeof stacks)[0]).conversations.createThread({ tool_name: 'chat' }));
    await stacks[0]?.cache.flush();
    const maxTurns = 3 * 10;
    await Promise.all(
      stacks.flatMap((stack, s) =>
        ids.map(async (id) => {
          const conversations = new ConversationStore({ cache: stack.cache, maxTurns });
          for (let i = 0; i < 10; i++)
            await conversations.addTurn(id, { role: 'user', content: `${s}:${i}` });
        }),
      ),
    );
    await Promise.all(stacks.map((stack) => stack.cache.flush()));
    // Readers that read the store (fresh instances) see every turn once, in one order. The writers
    // still serve their cached view (no invalidation bus over SQLite): their own turns and those
    // they had read, in that same relative order.
    const readers = [await openStack('reader-1.db'), await openStack('reader-2.db')];
    for (const id of ids) {
      const contents = async (stack: (typeof stacks)[0]) =>
        (await stack.conversations.getThread(id))?.turns.map((t) => t.content) ?? [];
      const [first, second] = await Promise.all(readers.map(contents));
      expect(first).toHaveLength(30);
      expect(new Set(first).size).toBe(30);
      expect(second).toEqual(first);
      for (let s = 0; s < 3; s++) {
        expect(first?.filter((c) => c.startsWith(`${s}:`))).toEqual(
          Array.from({ length: 10 }, (_, i) => `${s}:${i}`),
        );
      }
      for (const writer of stacks) {
        const cached = await contents(writer);
        expect(first?.filter((c) => cached.includes(c))).toEqual(cached);
      }
    }
    const fresh = readers[1] as (typeof stacks)[0];
    await readers[0]?.cache.close();
    await readers[0]?.storage.close();
    for (const stack of [...stacks, fresh]) {
      await stack.cache.close();
      await stack.storage.close();
    }
  });

  it('deleting a thread takes its turns, and a turn racing with the delete cannot bring it back', async () => {
    const stack = await openStack();
    const id = await stack.conversations.createThread({ tool_name: 'chat' });
    await stack.conversations.addTurn(id, { role: 'user', content: 'one' });
    await stack.cache.flush();
    const racing = stack.conversations.addTurn(id, { role: 'user', content: 'two' }).catch(() => undefined);
    await stack.conversations.deleteThread(id);
    await racing;
    await stack.cache.flush();
    expect(await stack.conversations.getThread(id)).toBeUndefined();
    expect(await stack.storage.getMany([threadKey(id)])).toEqual(
      new Map([[threadKey(id), expect.objectContaining({ json: null })]]),
    );
    await stack.storage.cleanup();
    await stack.cache.close();
    await stack.storage.close();
  });
});
