import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CorruptValueError,
  type LogItem,
  MemoryStorage,
  type StorageCallOptions,
  type StoredEntry,
} from '../../../src/index.js';
import { FaultyStorage } from '../../../src/testing/index.js';
import { memoryCache, settleWithTimers } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A store that answers every read with the entry the test gives for the key (its clock may differ from ours). */
class ScriptedReads extends FaultyStorage<MemoryStorage> {
  readonly answers = new Map<string, StoredEntry>();
  readonly markSignals: Array<AbortSignal | undefined> = [];
  constructor() {
    super(new MemoryStorage());
  }
  override async getMany(keys: string[]): Promise<Map<string, StoredEntry>> {
    const found = new Map<string, StoredEntry>();
    for (const key of keys) {
      const answer = this.answers.get(key);
      if (answer) found.set(key, answer);
    }
    return found;
  }
  override async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    this.markSignals.push(opts?.signal);
    return super.highWaterMark(opts);
  }
}

const big = 'x'.repeat(5_000);
const item = (version: number, value: unknown): LogItem => ({
  id: `${version}.other`,
  version,
  json: JSON.stringify(value),
});

/** A cache whose memory cannot keep `big`: reads of it are answered from the store's answer alone. */
async function smallMemory() {
  const storage = new ScriptedReads();
  const { cache } = await memoryCache({ storage, maxValueBytes: 1_000, maxBytes: 2_000 });
  return { storage, cache };
}

describe('getWithItems of a value larger than memory keeps', () => {
  it('answers with the stored value and the stored items in order', async () => {
    const { storage, cache } = await smallMemory();
    storage.answers.set('k', {
      version: 10,
      json: JSON.stringify(big),
      expiresAt: null,
      items: [item(11, 'a'), item(12, 'b')],
    });
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: big, items: ['a', 'b'] });
    expect(cache.stats().entries).toBe(0);
  });

  it('answers with no items when the store gives none', async () => {
    const { storage, cache } = await smallMemory();
    storage.answers.set('k', { version: 10, json: JSON.stringify(big), expiresAt: null });
    expect(await settleWithTimers(cache.getWithItems('k'))).toEqual({ value: big, items: [] });
  });

  it('is live until the local clock reaches its expiry, then absent', async () => {
    const { storage, cache } = await smallMemory();
    storage.answers.set('later', { version: 10, json: JSON.stringify(big), expiresAt: Date.now() + 1 });
    storage.answers.set('now', { version: 10, json: JSON.stringify(big), expiresAt: Date.now() });
    storage.answers.set('past', { version: 10, json: JSON.stringify(big), expiresAt: Date.now() - 1 });
    expect(await cache.getWithItems('later')).toEqual({ value: big, items: [] });
    expect(await cache.getWithItems('now')).toBeUndefined();
    expect(await cache.getWithItems('past')).toBeUndefined();
  });

  it('rejects with CorruptValueError when the stored value is not valid JSON', async () => {
    const { storage, cache } = await smallMemory();
    storage.answers.set('k', { version: 10, json: `"${big}`, expiresAt: null });
    const error = await settleWithTimers(cache.getWithItems('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptValueError);
    expect(error).toMatchObject({ code: 'ERR_CORRUPT_VALUE', key: 'k' });
    expect((error as Error).message).toBe(
      'the stored value of key "k" is damaged (not valid JSON) and cannot be read; overwrite or delete the key',
    );
    expect((error as Error).cause).toBeInstanceOf(SyntaxError);
  });

  it('rejects with CorruptValueError when a stored item is not valid JSON', async () => {
    const { storage, cache } = await smallMemory();
    storage.answers.set('k', {
      version: 10,
      json: JSON.stringify(big),
      expiresAt: null,
      items: [item(11, 'a'), { id: '12.other', version: 12, json: '{"torn' }],
    });
    const error = await settleWithTimers(cache.getWithItems('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptValueError);
    expect(error).toMatchObject({ code: 'ERR_CORRUPT_VALUE', key: 'k' });
    expect((error as Error).cause).toBeInstanceOf(SyntaxError);
  });
});

describe('get of a value larger than memory keeps', () => {
  it('rejects with CorruptValueError, caused by the parse error, when the stored value is not valid JSON', async () => {
    const { storage, cache } = await smallMemory();
    storage.answers.set('k', { version: 10, json: `"${big}`, expiresAt: null });
    const error = await settleWithTimers(cache.get('k')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptValueError);
    expect(error).toMatchObject({ code: 'ERR_CORRUPT_VALUE', key: 'k' });
    expect((error as Error).cause).toBeInstanceOf(SyntaxError);
  });
});

describe('the store version high-water mark', () => {
  it('is read with a signal the cache can abort', async () => {
    const { storage } = await smallMemory();
    await vi.advanceTimersByTimeAsync(0);
    expect(storage.markSignals).toHaveLength(1);
    expect(storage.markSignals[0]).toBeInstanceOf(AbortSignal);
  });
});
