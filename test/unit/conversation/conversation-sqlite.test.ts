import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHybridCache } from '../../../src/cache/create.js';
import { ConversationStore, threadKey } from '../../../src/conversation/index.js';
import { SqliteStorage } from '../../../src/storage/sqlite/sqlite-storage.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'conversation-sqlite-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const openStack = async () => {
  const storage = new SqliteStorage({ path: join(dir, 'store.db') });
  const cache = await createHybridCache({ storage, outbox: { path: join(dir, 'outbox.db') } });
  return { storage, cache, conversations: new ConversationStore({ cache }) };
};

describe('ConversationStore over the hybrid cache and the embedded store', () => {
  it('keeps a thread across a restart, stored in the original wire format', async () => {
    const first = await openStack();
    const id = await first.conversations.createThread({
      tool_name: 'chat',
      initial_context: { prompt: 'hi' },
    });
    await first.conversations.addTurn(id, { role: 'user', content: 'hi' });
    await first.cache.close({ timeoutMs: 5_000 });
    await first.storage.close();

    const second = await openStack();
    try {
      const thread = await second.conversations.getThread(id);
      expect(thread?.turns.map((t) => t.content)).toEqual(['hi']);
      const stored = (await second.storage.getMany([threadKey(id)])).get(threadKey(id));
      expect(Object.keys(JSON.parse(stored?.json ?? '{}'))).toEqual([
        'thread_id',
        'parent_thread_id',
        'created_at',
        'last_updated_at',
        'tool_name',
        'turns',
        'initial_context',
      ]);
      expect(stored?.expiresAt).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    } finally {
      await second.cache.close({ timeoutMs: 5_000 });
      await second.storage.close();
    }
  });
});
