import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ApplyResult, Storage } from '../storage/contract/types.js';
import { LOGICAL_SLOTS } from '../storage/contract/version.js';
import { describeFeed } from './feed-contract.js';
import { describeTies } from './tie-contract.js';
import { put, tombstone } from './writes.js';

/**
 * The test runner's functions the suite registers its tests with. Vitest and Jest export them
 * under these names; with node:test pass `{ describe, it, beforeAll: before, afterAll: after }`.
 * Assertions use `node:assert`, so no runner's `expect` is needed.
 */
export interface TestFunctions {
  describe(name: string, body: () => void): unknown;
  it(name: string, body: () => Promise<void>): unknown;
  beforeAll(hook: () => Promise<void>): unknown;
  afterAll(hook: () => Promise<void>): unknown;
}

export interface ContractSetup {
  storage: Storage;
  /**
   * Whether the store leaves the changes written with an origin out of a feed read that skips it
   * (`FeedReadOptions.skipOrigin`). Default true; an adapter that ignores the hint (which is
   * correct) says false, and is checked only for delivering every change and moving its cursor.
   */
  skipsOrigin?: boolean;
  /** Runs once after the suite, e.g. to close the store and remove its files. */
  cleanup?: () => Promise<void>;
}

/** What a suite's tests share: the adapter opened once for all of them, and fresh keys for each. */
export function contractFixture(
  setup: () => Promise<ContractSetup>,
  { beforeAll, afterAll }: Pick<TestFunctions, 'beforeAll' | 'afterAll'>,
) {
  let ctx: ContractSetup | undefined;
  beforeAll(async () => {
    ctx = await setup();
  });
  afterAll(async () => {
    await ctx?.cleanup?.();
  });
  const store = (): Storage => {
    if (!ctx) throw new Error('the contract suite has not been set up');
    return ctx.storage;
  };
  return {
    store,
    skipsOrigin: (): boolean => ctx?.skipsOrigin !== false,
    key: (label: string) => `${label}:${randomUUID()}`,
    read: async (k: string) => (await store().getMany([k])).get(k),
  };
}

/**
 * Registers the tests every `Storage` adapter must pass unchanged, the change feed's among them
 * (`describeFeed`, checked when the adapter has `changes`). `setup` runs once before them; each
 * test uses fresh keys, so a store shared with other data is fine (but `cleanup`'s test removes
 * every expired entry and tombstone it holds).
 */
export function describeStorageContract(
  name: string,
  setup: () => Promise<ContractSetup>,
  { describe, it, beforeAll, afterAll }: TestFunctions,
): void {
  describe(`Storage contract: ${name}`, () => {
    const { store, key, read, skipsOrigin } = contractFixture(setup, { beforeAll, afterAll });

    it('stores and reads back a value with its version and expiry', async () => {
      const k = key('basic');
      const expiresAt = Date.now() + 3_600_000;
      const [result] = await store().apply([put(k, 10, { a: 1, b: [true, null, 'x'] }, expiresAt)]);
      assert.deepEqual(result, { status: 'applied' });
      const entry = await read(k);
      assert.equal(entry?.version, 10);
      assert.deepEqual(JSON.parse(entry?.json ?? 'null'), { a: 1, b: [true, null, 'x'] });
      assert.equal(entry?.expiresAt, expiresAt);
    });

    it('reads unknown keys as absent', async () => {
      const found = await store().getMany([key('missing-a'), key('missing-b')]);
      assert.equal(found.size, 0);
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
        for (const v of order) outcomes.push(...(await store().apply([put(k, v, `value-${v}`)])));
        const entry = await read(k);
        assert.equal(entry?.version, 3);
        assert.equal(JSON.parse(entry?.json ?? 'null'), 'value-3');
        order.forEach((v, i) => {
          const newerBefore = order.slice(0, i).some((earlier) => earlier > v);
          assert.equal(outcomes[i]?.status, newerBefore ? 'stale' : 'applied');
        });
      }
    });

    it('treats re-applying the same write as idempotent (stale, value unchanged)', async () => {
      const k = key('idem');
      const write = put(k, 5, { n: 5 });
      assert.equal((await store().apply([write]))[0]?.status, 'applied');
      assert.equal((await store().apply([write]))[0]?.status, 'stale');
      const entry = await read(k);
      assert.equal(entry?.version, 5);
      assert.deepEqual(JSON.parse(entry?.json ?? 'null'), { n: 5 });
    });

    describeTies({ store, key, read }, { it });

    describeFeed({ store, key, skipsOrigin }, { it });

    it('returns tombstones with their version, and they block older writes', async () => {
      const k = key('tomb');
      await store().apply([put(k, 1, 'alive')]);
      assert.equal((await store().apply([tombstone(k, 2)]))[0]?.status, 'applied');
      const entry = await read(k);
      assert.deepEqual(entry, { version: 2, json: null, expiresAt: null });
      assert.equal((await store().apply([put(k, 1, 'resurrected')]))[0]?.status, 'stale');
      assert.equal((await read(k))?.json, null);
      assert.equal((await store().apply([put(k, 3, 'reborn')]))[0]?.status, 'applied');
      assert.equal(JSON.parse((await read(k))?.json ?? 'null'), 'reborn');
    });

    it('accepts a tombstone for a key it never saw, and it still blocks older writes', async () => {
      const k = key('tomb-first');
      assert.equal((await store().apply([tombstone(k, 9)]))[0]?.status, 'applied');
      assert.equal((await store().apply([put(k, 8, 'late')]))[0]?.status, 'stale');
      assert.equal((await read(k))?.json, null);
    });

    it('reads expired entries as absent', async () => {
      const k = key('expired');
      await store().apply([put(k, 1, 'old news', Date.now() - 1_000)]);
      assert.equal(await read(k), undefined);
    });

    it('lets a newer write replace an expired entry, but not an older one', async () => {
      const k = key('expired-replace');
      await store().apply([put(k, 5, 'gone', Date.now() - 1_000)]);
      assert.equal((await store().apply([put(k, 4, 'older')]))[0]?.status, 'stale');
      assert.equal(await read(k), undefined);
      assert.equal((await store().apply([put(k, 6, 'fresh')]))[0]?.status, 'applied');
      assert.equal(JSON.parse((await read(k))?.json ?? 'null'), 'fresh');
    });

    it('reports mixed outcomes in one batch, one per write in order', async () => {
      const a = key('mix-a');
      const b = key('mix-b');
      const c = key('mix-c');
      await store().apply([put(b, 10, 'b-current')]);
      const results = await store().apply([put(a, 1, 'a'), put(b, 5, 'b-older'), tombstone(c, 3)]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['applied', 'stale', 'applied'],
      );
      const found = await store().getMany([a, b, c]);
      assert.equal(JSON.parse(found.get(a)?.json ?? 'null'), 'a');
      assert.equal(JSON.parse(found.get(b)?.json ?? 'null'), 'b-current');
      assert.equal(found.get(c)?.json, null);
    });

    it('reads many keys at once', async () => {
      const keys = Array.from({ length: 50 }, (_, i) => key(`many-${i}`));
      await store().apply(keys.map((k, i) => put(k, i + 1, { i })));
      const found = await store().getMany([...keys, key('absent')]);
      assert.equal(found.size, 50);
      keys.forEach((k, i) => {
        assert.deepEqual(JSON.parse(found.get(k)?.json ?? 'null'), { i });
      });
    });

    it('handles unicode keys and values and 512-byte keys', async () => {
      const unicode = `ключ-🔑-${randomUUID()}`;
      const longKey = `${'é'.repeat(200)}${randomUUID()}`.slice(0, 236);
      const maxKey = `${longKey}${'x'.repeat(512 - Buffer.byteLength(longKey))}`;
      assert.equal(Buffer.byteLength(maxKey), 512);
      const value = { text: '多语言 ✓ \u0000-free \u2028 "quotes" \\ back', emoji: '🧵' };
      await store().apply([put(unicode, 1, value), put(maxKey, 1, 'max')]);
      const found = await store().getMany([unicode, maxKey]);
      assert.deepEqual(JSON.parse(found.get(unicode)?.json ?? 'null'), value);
      assert.equal(JSON.parse(found.get(maxKey)?.json ?? 'null'), 'max');
    });

    it('stores values of several megabytes intact', async () => {
      const k = key('large');
      const turns = Array.from({ length: 60 }, (_, i) => ({
        i,
        content: `${i}`.padEnd(50_000, 'abcdefghij'),
      }));
      const json = JSON.stringify({ turns });
      assert.ok(json.length > 3_000_000);
      await store().apply([{ key: k, version: 1, json, expiresAt: null }]);
      const entry = await read(k);
      assert.deepEqual(JSON.parse(entry?.json ?? 'null'), { turns });
    });

    it('reports a version high-water mark at or above every version it holds, tombstones and expired entries included', async () => {
      const before = await store().highWaterMark();
      assert.equal(Number.isSafeInteger(before), true);
      assert.ok(before >= 0);
      const live = key('hwm-live');
      const dead = key('hwm-tombstone');
      const expired = key('hwm-expired');
      await store().apply([put(live, before + 10, 'v')]);
      assert.ok((await store().highWaterMark()) >= before + 10);
      await store().apply([tombstone(dead, before + 20)]);
      assert.ok((await store().highWaterMark()) >= before + 20);
      await store().apply([put(expired, before + 30, 'gone', Date.now() - 1_000)]);
      assert.equal(await read(expired), undefined);
      assert.ok((await store().highWaterMark()) >= before + 30);
      // A stale write does not move it.
      await store().apply([put(live, before + 5, 'older')]);
      assert.ok((await store().highWaterMark()) >= before + 30);
    });

    it('honours an aborted signal on the high-water mark call', async () => {
      const controller = new AbortController();
      controller.abort(new Error('caller gave up'));
      await assert.rejects(store().highWaterMark({ signal: controller.signal }));
    });

    it('returns an empty result for an empty batch', async () => {
      assert.deepEqual(await store().apply([]), []);
      assert.equal((await store().getMany([])).size, 0);
    });

    it('changes and reads nothing when the call’s signal is already aborted', async () => {
      const k = key('aborted');
      const controller = new AbortController();
      controller.abort(new Error('caller gave up'));
      const { signal } = controller;
      await assert.rejects(store().apply([put(k, 1, 'never')], { signal }));
      await assert.rejects(store().getMany([k], { signal }));
      assert.equal(await read(k), undefined);
    });

    // Runs last: it removes every expired entry and tombstone the store holds.
    it('cleanup, when the adapter offers it, removes expired entries and tombstones past the retention only', async () => {
      const { cleanup } = store();
      if (!cleanup) return;
      const clean = cleanup.bind(store());
      const now = Date.now();
      const mintedAt = (ms: number) => ms * LOGICAL_SLOTS;
      const expired = key('cleanup-expired');
      const live = key('cleanup-live');
      const recentTombstone = key('cleanup-tombstone-recent');
      const oldTombstone = key('cleanup-tombstone-old');
      await store().apply([
        put(expired, mintedAt(now - 2_000), 'gone', now - 1_000),
        put(live, mintedAt(now - 2_000), 'kept', now + 3_600_000),
        tombstone(recentTombstone, mintedAt(now - 2_000)),
      ]);
      // Under the default retention (7 days) only the expired entry goes: a write older than it
      // now lands, while the tombstone still blocks one.
      assert.ok((await clean()) >= 1);
      assert.equal(
        (await store().apply([put(expired, mintedAt(now - 3_000), 'again')]))[0]?.status,
        'applied',
      );
      assert.equal((await store().apply([put(recentTombstone, 1, 'late')]))[0]?.status, 'stale');
      assert.equal(JSON.parse((await read(live))?.json ?? 'null'), 'kept');
      // With no retention the tombstone goes too, and the older write it blocked lands.
      await store().apply([tombstone(oldTombstone, mintedAt(now - 2_000))]);
      await new Promise((resolve) => setTimeout(resolve, 5));
      assert.ok((await clean({ tombstoneRetentionMs: 0 })) >= 2);
      assert.equal((await store().apply([put(oldTombstone, 1, 'late')]))[0]?.status, 'applied');
      assert.equal(JSON.parse((await read(live))?.json ?? 'null'), 'kept');
      assert.equal(await clean({ tombstoneRetentionMs: 0 }), 0);
    });
  });
}
