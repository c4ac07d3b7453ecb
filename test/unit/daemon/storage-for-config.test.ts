import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { createStorage } from '../../../src/daemon/storage-for-config.js';
import type { Storage } from '../../../src/storage/contract/types.js';
import { PostgresStorage } from '../../../src/storage/postgres/postgres-storage.js';
import { SupabaseStorage } from '../../../src/storage/supabase/supabase-storage.js';

const DATABASE_URL = 'postgres://postgres:secret@127.0.0.1:1/postgres';
const supabase = { SUPABASE_URL: 'https://xyz.supabase.co', SUPABASE_KEY: 'service-role-key' };
const logger = pino({ level: 'silent' });

const made: Storage[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((s) => s.close?.()));
});
function storageFor(env: Record<string, string>): Storage {
  const storage = createStorage(loadConfig(env).config, logger);
  made.push(storage);
  return storage;
}

// Nothing connects here: a doorbell starts listening only when a cache subscribes.
describe('createStorage and the doorbell', () => {
  it('gives backend postgres its doorbell', () => {
    const storage = storageFor({ CONVERSATION_STORAGE_BACKEND: 'postgres', DATABASE_URL });
    expect(storage).toBeInstanceOf(PostgresStorage);
    expect((storage as PostgresStorage).doorbellStats()).toMatchObject({ state: 'off', reconnects: 0 });
  });

  it('with backend supabase, listens on DATABASE_URL when it is set, and only then', () => {
    const listening = storageFor({ CONVERSATION_STORAGE_BACKEND: 'supabase', ...supabase, DATABASE_URL });
    expect(listening).toBeInstanceOf(SupabaseStorage);
    expect((listening as SupabaseStorage).doorbellStats()).toMatchObject({ state: 'off' });
    const deaf = storageFor({ CONVERSATION_STORAGE_BACKEND: 'supabase', ...supabase });
    expect((deaf as SupabaseStorage).doorbellStats()).toBeUndefined();
  });
});
