import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { scheduleStoreCleanup } from '../../../src/daemon/store-cleanup.js';
import { MemoryStorage, SqliteStorage } from '../../../src/index.js';
import { silentLogger } from '../../helpers/cache.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('scheduleStoreCleanup', () => {
  it('purges expired rows from the embedded store at each interval, until stopped', async () => {
    const storage = new SqliteStorage({ path: ':memory:' });
    await storage.apply([
      { key: 'gone', version: 1, json: '1', expiresAt: Date.now() + 1_000 },
      { key: 'kept', version: 1, json: '2', expiresAt: null },
    ]);
    const cleanup = vi.spyOn(storage, 'cleanup');
    const stop = scheduleStoreCleanup(storage, 60_000, silentLogger);
    await vi.advanceTimersByTimeAsync(59_999);
    expect(cleanup).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(cleanup).toHaveBeenCalledTimes(1);
    expect(await cleanup.mock.results[0]?.value).toBe(1);
    stop();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(cleanup).toHaveBeenCalledTimes(1);
    await storage.close();
  });

  it('keeps going after a failed cleanup', async () => {
    let calls = 0;
    const storage = Object.assign(new MemoryStorage(), {
      cleanup: async () => {
        calls++;
        if (calls === 1) throw new Error('store down');
        return 0;
      },
    });
    const stop = scheduleStoreCleanup(storage, 1_000, silentLogger);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(calls).toBe(2);
    stop();
  });

  it('does nothing when disabled or when the store has no cleanup', async () => {
    const storage = Object.assign(new MemoryStorage(), { cleanup: vi.fn(async () => 0) });
    scheduleStoreCleanup(storage, 0, silentLogger)();
    const plain = { getMany: vi.fn(), apply: vi.fn(), highWaterMark: vi.fn() };
    scheduleStoreCleanup(plain, 1_000, silentLogger)();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(storage.cleanup).not.toHaveBeenCalled();
  });
});
