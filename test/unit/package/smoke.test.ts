import { describe, expect, it } from 'vitest';
import { createHybridCache, MemoryStorage } from '../../../src/index.js';

describe('smoke', () => {
  it('round trips', async () => {
    const storage = new MemoryStorage();
    const cache = await createHybridCache({ storage, outbox: { durability: 'none' } });
    await cache.set('a', { x: 1 });
    expect(await cache.get('a')).toEqual({ x: 1 });
    await cache.flush();
    expect(storage.peek('a')?.json).toBe('{"x":1}');
    await cache.delete('a');
    expect(await cache.get('a')).toBeUndefined();
    await cache.flush();
    expect(storage.peek('a')?.json).toBeNull();
    const r = await cache.close();
    expect(r).toEqual({ pending: 0, drained: true });
  });
});
