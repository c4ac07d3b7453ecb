import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHybridCache } from '../../src/index.js';
import type { Storage } from '../../src/storage/contract/types.js';
import { type SupabaseEnv, startSupabaseEnv } from '../support/supabase-env.js';

let dir: string;
let env: SupabaseEnv;
beforeAll(async () => {
  env = await startSupabaseEnv();
});
afterAll(() => env?.close());
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'supabase-ties-'));
});
afterEach(async () => {
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

const openCache = async (storage: Storage, outbox: string) => {
  const cache = await createHybridCache<string>({
    storage,
    outbox: { path: join(dir, outbox) },
    flush: { intervalMs: 60_000 },
    logger: pino({ level: 'silent' }),
  });
  await vi.waitFor(() => expect(cache.stats().clockAnchored).toBe(true), { timeout: 5_000 });
  return cache;
};

describe('two caches writing one key at the same version over SupabaseStorage', () => {
  it('converge on the write that reached the store first, the other reading it again', async () => {
    // One frozen wall clock, ahead of anything stored: both mint the same first version.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 86_400_000);
    const storage = env.storage();
    const a = await openCache(storage, 'a.db');
    const b = await openCache(storage, 'b.db');
    const key = `tie:${randomUUID()}`;
    try {
      await a.set(key, 'from-a');
      await b.set(key, 'from-b');
      await a.flush({ timeoutMs: 5_000 });
      await b.flush({ timeoutMs: 5_000 });
      const stored = (await storage.getMany([key])).get(key);
      expect(JSON.parse(stored?.json ?? 'null')).toBe('from-a');
      expect(await a.get(key)).toBe('from-a');
      // The functions do not say what they hold at b's own version: b forgets its copy and reads.
      expect(await b.get(key)).toBe('from-a');
      expect(b.stats().superseded).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
