import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplyResult, Storage } from '../../src/storage/types.js';
import { put, tombstone } from '../helpers/writes.js';

export interface ContractSetup {
  storage: Storage;
  cleanup?: () => Promise<void>;
}

/**
 * One suite every `Storage` adapter must pass unchanged. Each test uses fresh keys, so a shared
 * backing store is fine.
 */
export function describeStorageContract(name: string, setup: () => Promise<ContractSetup>): void {
  describe(`Storage contract: ${name}`, () => {
    let ctx: ContractSetup;
    beforeAll(async () => {
      ctx = await setup();
    });
    afterAll(async () => {
      await ctx.cleanup?.();
    });

    const key = (label: string) => `${label}:${randomUUID()}`;
    const read = async (k: string) => (await ctx.storage.getMany([k])).get(k);

    it('stores and reads back a value with its version and expiry', async () => {
      const k = key('basic');
      const expiresAt = Date.now() + 3_600_000;
      const [result] = await ctx.storage.apply([put(k, 10, { a: 1, b: [true, null, 'x'] }, expiresAt)]);
      expect(result).toEqual({ status: 'applied' });
      const entry = await read(k);
      expect(entry?.version).toBe(10);
      expect(JSON.parse(entry?.json ?? 'null')).toEqual({ a: 1, b: [true, null, 'x'] });
      expect(entry?.expiresAt).toBe(expiresAt);
    });

    it('reads unknown keys as absent', async () => {
      const found = await ctx.storage.getMany([key('missing-a'), key('missing-b')]);
      expect(found.size).toBe(0);
    });

    it('keeps the highest version whatever the arrival order', async () => {
      const orders = [
        [1, 2, 3],
        [3, 2, 1],
        [2, 3, 1],
      ];
      for (const order of orders) {
        const k = key('lww');
        const outcomes: ApplyResult[] = [];
        for (const v of order) outcomes.push(...(await ctx.storage.apply([put(k, v, `value-${v}`)])));
        const entry = await read(k);
        expect(entry?.version).toBe(3);
        expect(JSON.parse(entry?.json ?? 'null')).toBe('value-3');
        order.forEach((v, i) => {
          const newerBefore = order.slice(0, i).some((earlier) => earlier > v);
          expect(outcomes[i]?.status).toBe(newerBefore ? 'stale' : 'applied');
        });
      }
    });

    it('treats re-applying the same write as idempotent (stale, value unchanged)', async () => {
      const k = key('idem');
      const write = put(k, 5, { n: 5 });
      expect((await ctx.storage.apply([write]))[0]?.status).toBe('applied');
      expect((await ctx.storage.apply([write]))[0]?.status).toBe('stale');
      const entry = await read(k);
      expect(entry?.version).toBe(5);
      expect(JSON.parse(entry?.json ?? 'null')).toEqual({ n: 5 });
    });

    it('does not let an equal version overwrite a different stored value', async () => {
      const k = key('tie');
      await ctx.storage.apply([put(k, 7, 'first')]);
      expect((await ctx.storage.apply([put(k, 7, 'second')]))[0]?.status).toBe('stale');
      expect(JSON.parse((await read(k))?.json ?? 'null')).toBe('first');
    });

    it('returns tombstones with their version, and they block older writes', async () => {
      const k = key('tomb');
      await ctx.storage.apply([put(k, 1, 'alive')]);
      expect((await ctx.storage.apply([tombstone(k, 2)]))[0]?.status).toBe('applied');
      const entry = await read(k);
      expect(entry).toEqual({ version: 2, json: null, expiresAt: null });
      expect((await ctx.storage.apply([put(k, 1, 'resurrected')]))[0]?.status).toBe('stale');
      expect((await read(k))?.json).toBeNull();
      expect((await ctx.storage.apply([put(k, 3, 'reborn')]))[0]?.status).toBe('applied');
      expect(JSON.parse((await read(k))?.json ?? 'null')).toBe('reborn');
    });

    it('accepts a tombstone for a key it never saw, and it still blocks older writes', async () => {
      const k = key('tomb-first');
      expect((await ctx.storage.apply([tombstone(k, 9)]))[0]?.status).toBe('applied');
      expect((await ctx.storage.apply([put(k, 8, 'late')]))[0]?.status).toBe('stale');
      expect((await read(k))?.json).toBeNull();
    });

    it('reads expired entries as absent', async () => {
      const k = key('expired');
      await ctx.storage.apply([put(k, 1, 'old news', Date.now() - 1_000)]);
      expect(await read(k)).toBeUndefined();
    });

    it('lets a newer write replace an expired entry, but not an older one', async () => {
      const k = key('expired-replace');
      await ctx.storage.apply([put(k, 5, 'gone', Date.now() - 1_000)]);
      expect((await ctx.storage.apply([put(k, 4, 'older')]))[0]?.status).toBe('stale');
      expect(await read(k)).toBeUndefined();
      expect((await ctx.storage.apply([put(k, 6, 'fresh')]))[0]?.status).toBe('applied');
      expect(JSON.parse((await read(k))?.json ?? 'null')).toBe('fresh');
    });

    it('reports mixed outcomes in one batch, one per write in order', async () => {
      const a = key('mix-a');
      const b = key('mix-b');
      const c = key('mix-c');
      await ctx.storage.apply([put(b, 10, 'b-current')]);
      const results = await ctx.storage.apply([put(a, 1, 'a'), put(b, 5, 'b-older'), tombstone(c, 3)]);
      expect(results.map((r) => r.status)).toEqual(['applied', 'stale', 'applied']);
      const found = await ctx.storage.getMany([a, b, c]);
      expect(JSON.parse(found.get(a)?.json ?? 'null')).toBe('a');
      expect(JSON.parse(found.get(b)?.json ?? 'null')).toBe('b-current');
      expect(found.get(c)?.json).toBeNull();
    });

    it('reads many keys at once', async () => {
      const keys = Array.from({ length: 50 }, (_, i) => key(`many-${i}`));
      await ctx.storage.apply(keys.map((k, i) => put(k, i + 1, { i })));
      const found = await ctx.storage.getMany([...keys, key('absent')]);
      expect(found.size).toBe(50);
      keys.forEach((k, i) => {
        expect(JSON.parse(found.get(k)?.json ?? 'null')).toEqual({ i });
      });
    });

    it('handles unicode keys and values and 512-byte keys', async () => {
      const unicode = `ключ-🔑-${randomUUID()}`;
      const longKey = `${'é'.repeat(200)}${randomUUID()}`.slice(0, 236);
      const maxKey = `${longKey}${'x'.repeat(512 - Buffer.byteLength(longKey))}`;
      expect(Buffer.byteLength(maxKey)).toBe(512);
      const value = { text: '多语言 ✓ \u0000-free \u2028 "quotes" \\ back', emoji: '🧵' };
      await ctx.storage.apply([put(unicode, 1, value), put(maxKey, 1, 'max')]);
      const found = await ctx.storage.getMany([unicode, maxKey]);
      expect(JSON.parse(found.get(unicode)?.json ?? 'null')).toEqual(value);
      expect(JSON.parse(found.get(maxKey)?.json ?? 'null')).toBe('max');
    });

    it('stores values of several megabytes intact', async () => {
      const k = key('large');
      const turns = Array.from({ length: 60 }, (_, i) => ({
        i,
        content: `${i}`.padEnd(50_000, 'abcdefghij'),
      }));
      const json = JSON.stringify({ turns });
      expect(json.length).toBeGreaterThan(3_000_000);
      await ctx.storage.apply([{ key: k, version: 1, json, expiresAt: null }]);
      const entry = await read(k);
      expect(JSON.parse(entry?.json ?? 'null')).toEqual({ turns });
    });

    it('reports a version high-water mark at or above every version it holds, tombstones and expired entries included', async () => {
      const before = await ctx.storage.highWaterMark();
      expect(Number.isSafeInteger(before)).toBe(true);
      expect(before).toBeGreaterThanOrEqual(0);
      const live = key('hwm-live');
      const dead = key('hwm-tombstone');
      const expired = key('hwm-expired');
      await ctx.storage.apply([put(live, before + 10, 'v')]);
      expect(await ctx.storage.highWaterMark()).toBeGreaterThanOrEqual(before + 10);
      await ctx.storage.apply([tombstone(dead, before + 20)]);
      expect(await ctx.storage.highWaterMark()).toBeGreaterThanOrEqual(before + 20);
      await ctx.storage.apply([put(expired, before + 30, 'gone', Date.now() - 1_000)]);
      expect(await read(expired)).toBeUndefined();
      expect(await ctx.storage.highWaterMark()).toBeGreaterThanOrEqual(before + 30);
      // A stale write does not move it.
      await ctx.storage.apply([put(live, before + 5, 'older')]);
      expect(await ctx.storage.highWaterMark()).toBeGreaterThanOrEqual(before + 30);
    });

    it('honours an aborted signal on the high-water mark call', async () => {
      const controller = new AbortController();
      controller.abort(new Error('caller gave up'));
      await expect(ctx.storage.highWaterMark({ signal: controller.signal })).rejects.toThrow();
    });

    it('returns an empty result for an empty batch', async () => {
      expect(await ctx.storage.apply([])).toEqual([]);
      expect((await ctx.storage.getMany([])).size).toBe(0);
    });
  });
}
