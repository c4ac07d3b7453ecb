import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackpressureError } from '../../../src/index.js';
import { memoryCache, settleWithTimers } from '../../helpers/cache.js';

let dir: string;
beforeEach(() => {
  vi.useFakeTimers();
  dir = mkdtempSync(join(tmpdir(), 'hc-append-outbox-'));
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

const durable = () => ({ outbox: { path: join(dir, 'outbox.db'), durability: 'process' as const } });

describe('appends with a durable outbox', () => {
  it('count items still being recorded against maxPendingBytes, and only until they are recorded', async () => {
    const { cache, storage } = await memoryCache({
      ...durable(),
      maxPendingBytes: 1_000,
      maxValueBytes: 400,
    });
    storage.goDown();
    const item = 'x'.repeat(350);
    const recording = [cache.append('log', item), cache.append('log', item)];
    const error = await cache.append('log', item).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackpressureError);
    await Promise.all(recording);
    const recorded = cache.stats().pendingBytes;
    expect(recorded).toBeGreaterThan(700);
    expect((error as BackpressureError).pendingBytes).toBe(recorded);
    // Still full once recorded: each item counts once.
    await expect(cache.append('log', item)).rejects.toBeInstanceOf(BackpressureError);
    expect(cache.stats().pendingBytes).toBe(recorded);
    await cache.append('log', 'small');
    await settleWithTimers(cache.close({ timeoutMs: 10 }));
  });

  it('close includes items still being recorded in its drain', async () => {
    const { cache, storage } = await memoryCache(durable());
    const first = cache.append('log', 1);
    const second = cache.append('log', 2);
    const result = await settleWithTimers(cache.close());
    await Promise.all([first, second]);
    expect(result).toEqual({ pending: 0, drained: true });
    expect(storage.inner.peekItems('log').map((i) => JSON.parse(i.json))).toEqual([1, 2]);
  });
});

describe('writes without an outbox', () => {
  it('are in memory as soon as the call returns: a read issued at once needs no store read', async () => {
    const { cache, storage } = await memoryCache();
    void cache.set('k', 'v');
    void cache.append('log', 'i');
    expect(cache.stats()).toMatchObject({ pending: 2 });
    expect(await cache.get('k')).toBe('v');
    expect(storage.calls.getMany).toBe(0);
    await settleWithTimers(cache.close());
  });
});
