import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryOutbox } from '../../../../src/sync/outbox/outbox.js';
import { capturingLogger, memoryCache, settleWithTimers } from '../../../helpers/cache.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('MemoryOutbox (durability none)', () => {
  it('has no file to lose, and nothing from an earlier process: no damaged rows, no reserved versions', () => {
    const outbox = new MemoryOutbox();
    expect(outbox.lost).toBe(false);
    expect(outbox.quarantineDamaged()).toEqual([]);
    expect(outbox.reservedVersions()).toEqual([]);
  });

  it('a cache over it opens with no dead letters, and on close warns that unflushed writes are lost with it', async () => {
    vi.useFakeTimers();
    const log = capturingLogger();
    const { cache, storage } = await memoryCache({ logger: log.logger });
    expect(cache.stats().deadLetters).toBe(0);
    expect(cache.deadLetters()).toEqual([]);
    expect(log.at('warn')).toEqual([]);
    storage.goDown();
    await cache.set('k', 1);
    await settleWithTimers(cache.close({ timeoutMs: 50 }));
    expect(log.at('warn')).toContainEqual(
      expect.objectContaining({
        pending: 1,
        durable: false,
        outboxLost: false,
        msg: 'closed with unflushed writes and no outbox; they are lost',
      }),
    );
  });
});
