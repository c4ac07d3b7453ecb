import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { wire } from '../../../src/daemon/wire.js';

describe('wire', () => {
  const silent = pino({ level: 'silent' });

  it('builds a working conversation store on the memory backend without touching the disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wire-'));
    try {
      const { config } = loadConfig({ CONVERSATION_STORAGE_BACKEND: 'memory', CACHE_DATA_DIR: 'd' }, dir);
      const wired = await wire(config, silent);
      const id = await wired.conversations.createThread({ tool_name: 'chat' });
      expect(await wired.conversations.getThread(id)).toMatchObject({ thread_id: id });
      expect(await wired.close({ timeoutMs: 1_000 })).toEqual({ pending: 0, drained: true });
      expect(existsSync(join(dir, 'd'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('puts store.db and outbox.db under CACHE_DATA_DIR for sqlite, and applies the turn limit and TTL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wire-'));
    try {
      const { config } = loadConfig({ CACHE_DATA_DIR: 'nested/data', MAX_CONVERSATION_TURNS: '1' }, dir);
      const wired = await wire(config, silent);
      expect(existsSync(join(dir, 'nested/data/store.db'))).toBe(true);
      expect(existsSync(join(dir, 'nested/data/outbox.db'))).toBe(true);
      expect(wired.conversations.maxTurns).toBe(1);
      expect(wired.conversations.ttlMs).toBe(24 * 3_600_000);
      const id = await wired.conversations.createThread({ tool_name: 'chat' });
      await wired.conversations.addTurn(id, { role: 'user', content: 'one' });
      await expect(wired.conversations.addTurn(id, { role: 'user', content: 'two' })).rejects.toThrow(
        /limit of 1/,
      );
      await wired.close({ timeoutMs: 1_000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
