import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StorageUnavailableError, ValidationError } from '../../../src/cache/errors.js';
import {
  ConversationStore,
  ParentThreadNotFoundError,
  type ThreadCache,
  ThreadNotFoundError,
  TurnLimitError,
  threadKey,
} from '../../../src/conversation/index.js';
import { NewTurnSchema } from '../../../src/conversation/schemas.js';

const HOUR = 3_600_000;
const START = Date.UTC(2025, 9, 13, 7, 3, 0, 123);

/** A Map honouring TTL against the (faked) clock, storing JSON (a value and its appended items) as the real cache does. */
class FakeThreadCache implements ThreadCache {
  readonly entries = new Map<string, { json: string; items: string[]; expiresAt: number | null }>();
  readonly ttls: Array<number | undefined> = [];
  gets = 0;
  failReads = false;

  async get(key: string): Promise<unknown | undefined> {
    return (await this.getWithItems(key))?.value;
  }

  async getWithItems(key: string): Promise<{ value: unknown; items: unknown[] } | undefined> {
    this.gets++;
    await yieldTurns();
    if (this.failReads) throw new StorageUnavailableError('store unreachable');
    const entry = this.entries.get(key);
    if (!entry || (entry.expiresAt !== null && entry.expiresAt <= Date.now())) return undefined;
    return { value: JSON.parse(entry.json), items: entry.items.map((item) => JSON.parse(item)) };
  }

  async set(key: string, value: unknown, opts?: { ttlMs?: number }): Promise<void> {
    await yieldTurns();
    this.ttls.push(opts?.ttlMs);
    const expiresAt = opts?.ttlMs ? Date.now() + opts.ttlMs : null;
    this.entries.set(key, {
      json: JSON.stringify(value),
      items: this.entries.get(key)?.items ?? [],
      expiresAt,
    });
  }

  async append(key: string, item: unknown, opts?: { ttlMs?: number }): Promise<void> {
    await yieldTurns();
    this.ttls.push(opts?.ttlMs);
    const entry = this.entries.get(key);
    if (!entry) throw new Error('append to a key that was never set');
    entry.items.push(JSON.stringify(item));
    if (opts?.ttlMs && entry.expiresAt !== null)
      entry.expiresAt = Math.max(entry.expiresAt, Date.now() + opts.ttlMs);
  }

  async delete(key: string): Promise<void> {
    await yieldTurns();
    this.entries.delete(key);
  }

  /** The stored header and the appended turns, as JSON. */
  raw(threadId: string): string | undefined {
    const entry = this.entries.get(threadKey(threadId));
    return entry && `${entry.json} + [${entry.items.join(',')}]`;
  }

  put(threadId: string, value: unknown): void {
    this.entries.set(threadKey(threadId), { json: JSON.stringify(value), items: [], expiresAt: null });
  }
}

/** Lets other pending calls run in between, as real I/O would. */
async function yieldTurns(): Promise<void> {
  for (let i = 0; i < 3; i++) await Promise.resolve();
}

let cache: FakeThreadCache;
let store: ConversationStore;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(START);
  cache = new FakeThreadCache();
  store = new ConversationStore({ cache });
});

afterEach(() => {
  vi.useRealTimers();
});

const advance = (ms: number) => vi.setSystemTime(Date.now() + ms);

describe('ConversationStore wire format', () => {
  it('returns a thread as the original ThreadContext JSON, field for field and in order, from a header and one item per turn', async () => {
    const id = await store.createThread({
      tool_name: 'chat',
      initial_context: { prompt: 'Hello', files: ['a.py'] },
    });
    advance(1_000);
    await store.addTurn(id, { role: 'user', content: 'Hello' });
    advance(1_000);
    await store.addTurn(id, {
      role: 'assistant',
      content: 'Hi!',
      files: ['a.py'],
      images: ['diagram.png'],
      tool_name: 'chat',
      model_provider: 'google',
      model_name: 'gemini-2.5-pro',
      model_metadata: { usage: { input_tokens: 12 } },
    });
    // Storage: the header as created (no turns), then each turn appended on its own.
    const header = JSON.parse(cache.raw(id)?.split(' + ')[0] ?? 'null');
    expect(header).toMatchObject({ turns: [], last_updated_at: '2025-10-13T07:03:00.123000+00:00' });
    expect(cache.entries.get(threadKey(id))?.items).toHaveLength(2);
    expect(JSON.stringify(await store.getThread(id))).toBe(
      `{"thread_id":"${id}","parent_thread_id":null,` +
        '"created_at":"2025-10-13T07:03:00.123000+00:00","last_updated_at":"2025-10-13T07:03:02.123000+00:00",' +
        '"tool_name":"chat","turns":[' +
        '{"role":"user","content":"Hello","timestamp":"2025-10-13T07:03:01.123000+00:00","files":null,' +
        '"images":null,"tool_name":null,"model_provider":null,"model_name":null,"model_metadata":null},' +
        '{"role":"assistant","content":"Hi!","timestamp":"2025-10-13T07:03:02.123000+00:00","files":["a.py"],' +
        '"images":["diagram.png"],"tool_name":"chat","model_provider":"google","model_name":"gemini-2.5-pro",' +
        '"model_metadata":{"usage":{"input_tokens":12}}}],' +
        '"initial_context":{"prompt":"Hello","files":["a.py"]}}',
    );
  });

  it('creates UUID v4 ids under the original key scheme', async () => {
    const id = await store.createThread({ tool_name: 'chat' });
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...cache.entries.keys()]).toEqual([`thread:${id}`]);
    expect(await store.createThread({ tool_name: 'chat' })).not.toBe(id);
  });

  it('drops temperature, thinking_mode, model and continuation_id from the initial context', async () => {
    const id = await store.createThread({
      tool_name: 'debug',
      initial_context: {
        prompt: 'why?',
        temperature: 0.2,
        thinking_mode: 'high',
        model: 'o3',
        continuation_id: 'abc',
        step_number: 1,
      },
    });
    expect((await store.getThread(id))?.initial_context).toEqual({ prompt: 'why?', step_number: 1 });
  });

  it('records the parent thread of a continuation', async () => {
    const parent = await store.createThread({ tool_name: 'chat' });
    const child = await store.createThread({ tool_name: 'chat', parent_thread_id: parent });
    expect((await store.getThread(child))?.parent_thread_id).toBe(parent);
  });

  it('reads a thread written by the Python daemon before turns had images or model fields', async () => {
    const id = '0b9e4d3c-5a2f-4e1b-9c8d-7f6e5d4c3b2a';
    cache.put(id, {
      thread_id: id,
      created_at: '2025-10-13T07:03:00+00:00',
      last_updated_at: '2025-10-13T07:04:00.654321+00:00',
      tool_name: 'chat',
      turns: [{ role: 'user', content: 'hi', timestamp: '2025-10-13T07:04:00.654321+00:00', files: null }],
      initial_context: {},
    });
    const thread = await store.getThread(id);
    expect(thread?.parent_thread_id).toBeNull();
    expect(thread?.turns[0]).toEqual({
      role: 'user',
      content: 'hi',
      timestamp: '2025-10-13T07:04:00.654321+00:00',
      files: null,
      images: null,
      tool_name: null,
      model_provider: null,
      model_name: null,
      model_metadata: null,
    });
  });

  it('reads a stored value that is not a thread as absent', async () => {
    const id = '0b9e4d3c-5a2f-4e1b-9c8d-7f6e5d4c3b2a';
    cache.put(id, { thread_id: id, turns: 'not a list' });
    expect(await store.getThread(id)).toBeUndefined();
  });
});

describe('ConversationStore thread ids', () => {
  it.each([
    'not-a-uuid',
    '',
    '../../etc/passwd',
    '0b9e4d3c-5a2f-1e1b-9c8d-7f6e5d4c3b2a', // version 1
    '0b9e4d3c5a2f4e1b9c8d7f6e5d4c3b2a', // no hyphens
    '0b9e4d3c-5a2f-4e1b-9c8d-7f6e5d4c3b2a ',
  ])('reads %j as absent without touching the cache', async (id) => {
    expect(await store.getThread(id)).toBeUndefined();
    expect(await store.getThreadChain(id)).toEqual([]);
    await expect(store.addTurn(id, { role: 'user', content: 'x' })).rejects.toThrow(ThreadNotFoundError);
    await store.deleteThread(id);
    expect(cache.gets).toBe(0);
  });

  it('finds a thread whatever the case of its id', async () => {
    const id = await store.createThread({ tool_name: 'chat' });
    expect((await store.getThread(id.toUpperCase()))?.thread_id).toBe(id);
  });

  it('refuses a parent that does not exist or is gone, storing nothing', async () => {
    const gone = await store.createThread({ tool_name: 'chat' });
    await store.deleteThread(gone);
    const setsBefore = cache.ttls.length;
    for (const parentThreadId of ['3b9e4d3c-5a2f-4e1b-9c8d-7f6e5d4c3b2a', gone]) {
      const error = await store
        .createThread({ tool_name: 'chat', parent_thread_id: parentThreadId })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ParentThreadNotFoundError);
      expect(error).toMatchObject({ code: 'ERR_PARENT_THREAD_NOT_FOUND', parentThreadId });
      expect((error as Error).message).toContain(`'${parentThreadId}' was not found or has expired`);
    }
    expect(cache.ttls.length).toBe(setsBefore);
  });

  it('refuses a parent id that is not a UUID v4', async () => {
    await expect(store.createThread({ tool_name: 'chat', parent_thread_id: 'nope' })).rejects.toThrow(
      ValidationError,
    );
    expect(cache.entries.size).toBe(0);
  });
});

describe('ConversationStore TTL', () => {
  it('expires a thread 24 h after its last turn, not its first', async () => {
    const id = await store.createThread({ tool_name: 'chat' });
    advance(23 * HOUR);
    await store.addTurn(id, { role: 'user', content: 'one' });
    advance(23 * HOUR);
    await store.addTurn(id, { role: 'assistant', content: 'two' });
    advance(24 * HOUR - 1);
    expect((await store.getThread(id))?.turns).toHaveLength(2);
    advance(1);
    expect(await store.getThread(id)).toBeUndefined();
    expect(cache.ttls).toEqual([24 * HOUR, 24 * HOUR, 24 * HOUR]);
  });

  it('uses the configured TTL', async () => {
    store = new ConversationStore({ cache, ttlMs: 3 * HOUR });
    const id = await store.createThread({ tool_name: 'chat' });
    advance(3 * HOUR);
    expect(await store.getThread(id)).toBeUndefined();
  });

  it('refuses a turn on an expired thread with the user-facing message', async () => {
    const id = await store.createThread({ tool_name: 'chat' });
    advance(25 * HOUR);
    const error = await store.addTurn(id, { role: 'user', content: 'still there?' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ThreadNotFoundError);
    expect((error as ThreadNotFoundError).threadId).toBe(id);
    expect((error as Error).message).toBe(
      `Conversation thread '${id}' was not found or has expired; restart the conversation by sending your ` +
        'full request again without continuation_id.',
    );
  });
});

describe('ConversationStore turns', () => {
  it('refuses the turn past maxTurns and leaves the thread unchanged', async () => {
    store = new ConversationStore({ cache, maxTurns: 3 });
    const id = await store.createThread({ tool_name: 'chat' });
    for (const content of ['1', '2', '3']) await store.addTurn(id, { role: 'user', content });
    const before = cache.raw(id);
    const error = await store.addTurn(id, { role: 'user', content: '4' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TurnLimitError);
    expect(error).toMatchObject({ code: 'ERR_TURN_LIMIT', maxTurns: 3, threadId: id });
    expect(cache.raw(id)).toBe(before);
  });

  it('allows 50 turns by default', async () => {
    const id = await store.createThread({ tool_name: 'chat' });
    for (let i = 0; i < 50; i++)
      await store.addTurn(id, { role: i % 2 ? 'assistant' : 'user', content: `${i}` });
    await expect(store.addTurn(id, { role: 'user', content: '50' })).rejects.toThrow(TurnLimitError);
  });

  it('keeps every one of 100 concurrent turns on one thread', async () => {
    store = new ConversationStore({ cache, maxTurns: 200 });
    const id = await store.createThread({ tool_name: 'chat' });
    const contents = Array.from({ length: 100 }, (_, i) => `turn ${i}`);
    await Promise.all(contents.map((content) => store.addTurn(id, { role: 'user', content })));
    expect((await store.getThread(id))?.turns.map((t) => t.content)).toEqual(contents);
  });

  it('adds concurrent turns to different threads independently', async () => {
    const ids = await Promise.all([1, 2, 3].map(() => store.createThread({ tool_name: 'chat' })));
    await Promise.all(
      ids.flatMap((id) => [1, 2].map((n) => store.addTurn(id, { role: 'user', content: `${id}:${n}` }))),
    );
    for (const id of ids) {
      expect((await store.getThread(id))?.turns.map((t) => t.content)).toEqual([`${id}:1`, `${id}:2`]);
    }
  });

  it('rejects a malformed turn with a ValidationError naming the field, without touching the cache', async () => {
    const id = await store.createThread({ tool_name: 'chat' });
    const gets = cache.gets;
    const bad = [
      { role: 'system', content: 'x' },
      { role: 'user', content: 42 },
      { role: 'user' },
      { role: 'user', content: 'x', toolName: 'field names are snake_case, as stored' },
      { role: 'user', content: 'x', timestamp: 'the store sets it' },
    ];
    for (const turn of bad) {
      // biome-ignore lint/suspicious/noExplicitAny: deliberately malformed input
      await expect(store.addTurn(id, turn as any)).rejects.toThrow(ValidationError);
    }
    // biome-ignore lint/suspicious/noExplicitAny: deliberately malformed input
    await expect(store.addTurn(id, { role: 'user', content: 42 } as any)).rejects.toThrow(/content/);
    expect(cache.gets).toBe(gets);
    expect((await store.getThread(id))?.turns).toEqual([]);
  });

  it('takes the field names it returns: a returned turn, without its timestamp, is a valid input', async () => {
    const id = await store.createThread({ tool_name: 'chat', parent_thread_id: null });
    const turn = {
      role: 'assistant' as const,
      content: 'Hi!',
      files: ['a.py'],
      images: null,
      tool_name: 'chat',
      model_provider: 'google',
      model_name: null,
      model_metadata: { usage: { input_tokens: 12 } },
    };
    const first = (await store.addTurn(id, turn)).turns[0];
    const { timestamp, ...resubmitted } = first as NonNullable<typeof first>;
    expect(timestamp).toMatch(/\+00:00$/);
    expect(resubmitted).toEqual(turn);
    const again = await store.addTurn(id, resubmitted);
    expect(again.turns[1]).toEqual(first && { ...first, timestamp: again.last_updated_at });
  });

  it('exports the turn schema for request bodies', () => {
    expect(NewTurnSchema.safeParse({ role: 'assistant', content: '' }).success).toBe(true);
    expect(NewTurnSchema.safeParse({ role: 'assistant', content: null }).success).toBe(false);
  });

  it('passes cache failures through instead of reporting the thread missing', async () => {
    const id = await store.createThread({ tool_name: 'chat' });
    cache.failReads = true;
    await expect(store.getThread(id)).rejects.toThrow(StorageUnavailableError);
    await expect(store.addTurn(id, { role: 'user', content: 'x' })).rejects.toThrow(StorageUnavailableError);
  });
});

describe('ConversationStore chains', () => {
  const createChain = async (length: number) => {
    const ids: string[] = [];
    for (let i = 0; i < length; i++) {
      ids.push(await store.createThread({ tool_name: `step-${i}`, parent_thread_id: ids[i - 1] }));
    }
    return ids;
  };

  it('returns the thread with its ancestors, oldest first', async () => {
    const ids = await createChain(4);
    expect((await store.getThreadChain(ids[3] as string)).map((t) => t.thread_id)).toEqual(ids);
  });

  it('follows at most 20 threads, keeping the nearest ones', async () => {
    const ids = await createChain(25);
    const chain = await store.getThreadChain(ids[24] as string);
    expect(chain.map((t) => t.thread_id)).toEqual(ids.slice(5));
  });

  it('stops at a parent that is missing or expired', async () => {
    const ids = await createChain(3);
    await store.deleteThread(ids[0] as string);
    expect((await store.getThreadChain(ids[2] as string)).map((t) => t.thread_id)).toEqual(ids.slice(1));
  });

  it('stops at a cycle, reading each thread once', async () => {
    const a = '1b9e4d3c-5a2f-4e1b-9c8d-7f6e5d4c3b2a';
    const b = '2b9e4d3c-5a2f-4e1b-9c8d-7f6e5d4c3b2a';
    const thread = (id: string, parent: string) => ({
      thread_id: id,
      parent_thread_id: parent,
      created_at: '2025-10-13T07:03:00.123000+00:00',
      last_updated_at: '2025-10-13T07:03:00.123000+00:00',
      tool_name: 'chat',
      turns: [],
      initial_context: {},
    });
    cache.put(a, thread(a, b));
    cache.put(b, thread(b, a));
    expect((await store.getThreadChain(a)).map((t) => t.thread_id)).toEqual([b, a]);
    expect(cache.gets).toBe(2);
  });

  it('is empty for an unknown thread', async () => {
    expect(await store.getThreadChain('3b9e4d3c-5a2f-4e1b-9c8d-7f6e5d4c3b2a')).toEqual([]);
  });
});

describe('ConversationStore deletion', () => {
  it('deletes a thread, and a turn racing with the delete cannot bring it back', async () => {
    const id = await store.createThread({ tool_name: 'chat' });
    const turn = store.addTurn(id, { role: 'user', content: 'late' });
    const deletion = store.deleteThread(id);
    await Promise.all([turn, deletion]);
    expect(await store.getThread(id)).toBeUndefined();
    expect(cache.entries.size).toBe(0);
  });
});

describe('settings', () => {
  it('refuses nonsensical store options', () => {
    expect(() => new ConversationStore({ cache, maxTurns: 0 })).toThrow(RangeError);
    expect(() => new ConversationStore({ cache, ttlMs: Number.NaN })).toThrow(RangeError);
  });
});
