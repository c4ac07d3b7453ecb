import assert from 'node:assert/strict';
import { LOGICAL_SLOTS } from '../storage/contract/version.js';
import { describeLogFloor } from './log-floor-contract.js';
import { type ContractSetup, contractFixture, type TestFunctions } from './storage-contract.js';
import { appended, item, put, tombstone } from './writes.js';

/**
 * Registers the tests of append-only logs (`AppendWrite`) every `Storage` adapter must pass: each
 * item stored once by id, one `(version, id)` order for every reader, and the key's tombstone,
 * expiry and log floor (`ValueWrite.logFloor`) governing its items. Fresh keys per test, as in `describeStorageContract`.
 */
export function describeAppendContract(
  name: string,
  setup: () => Promise<ContractSetup>,
  { describe, it, beforeAll, afterAll }: TestFunctions,
): void {
  describe(`Storage append contract: ${name}`, () => {
    const { store, key, read } = contractFixture(setup, { beforeAll, afterAll });
    const itemValues = async (k: string) => ((await read(k))?.items ?? []).map((i) => JSON.parse(i.json));

    it('reads a key’s items with its value, in (version, id) order whatever the arrival order', async () => {
      const k = key('order');
      await store().apply([put(k, 10, { header: true })]);
      const [a, b, c, d] = [item(20, 'a'), item(30, 'b', `a-${k}`), item(30, 'c', `b-${k}`), item(40, 'd')];
      const results = await store().apply([appended(k, [c, d]), appended(k, [a]), appended(k, [b])]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['applied', 'applied', 'applied'],
      );
      const entry = await read(k);
      assert.deepEqual(JSON.parse(entry?.json ?? 'null'), { header: true });
      assert.deepEqual(await itemValues(k), ['a', 'b', 'c', 'd']);
      assert.deepEqual(
        entry?.items?.map((i) => i.id),
        [a.id, b.id, c.id, d.id],
      );
    });

    it('stores each item once however often it is re-sent', async () => {
      const k = key('idempotent');
      await store().apply([put(k, 1, 'v')]);
      const [x, y] = [item(5, 'x'), item(6, 'y')];
      const batch = [appended(k, [x, y])];
      await store().apply(batch);
      const again = await store().apply([appended(k, [x, y, item(7, 'z')])]);
      assert.equal(again[0]?.status, 'applied');
      await store().apply(batch);
      assert.deepEqual(await itemValues(k), ['x', 'y', 'z']);
    });

    it('leaves the log alone when the value is replaced', async () => {
      const k = key('value-write');
      await store().apply([put(k, 1, 'first'), appended(k, [item(2, 'i')]), put(k, 3, 'second')]);
      const entry = await read(k);
      assert.equal(JSON.parse(entry?.json ?? 'null'), 'second');
      assert.deepEqual(await itemValues(k), ['i']);
    });

    it('drops the items older than a tombstone, and a late older append never brings one back', async () => {
      const k = key('tombstone');
      await store().apply([put(k, 1, 'v'), appended(k, [item(2, 'old')])]);
      await store().apply([tombstone(k, 10)]);
      const late = await store().apply([appended(k, [item(5, 'late')])]);
      assert.deepEqual(late[0], { status: 'stale', storedVersion: 10 });
      assert.equal((await read(k))?.items, undefined);
      await store().apply([put(k, 20, 'again'), appended(k, [item(21, 'new'), item(9, 'older')])]);
      assert.deepEqual(await itemValues(k), ['new']);
    });

    it('starts a new log when a value is written over an expired key', async () => {
      const now = Date.now() * LOGICAL_SLOTS;
      const k = key('expired-then-set');
      await store().apply([put(k, now - 5_000 * LOGICAL_SLOTS, 'old', Date.now() - 1_000)]);
      await store().apply([appended(k, [item(now + 1, 'from-before')])]);
      await store().apply([
        put(k, now + 5, 'new'),
        appended(k, [item(now + 3, 'late'), item(now + 6, 'after')]),
      ]);
      assert.deepEqual(await itemValues(k), ['after']);
    });

    it('starts a new log when a value is written over a tombstone: items appended to the deleted key never show', async () => {
      const k = key('deleted-then-set');
      await store().apply([tombstone(k, 10), appended(k, [item(12, 'to-the-deleted-key')])]);
      await store().apply([put(k, 20, 'again'), appended(k, [item(15, 'late'), item(21, 'after')])]);
      assert.deepEqual(await itemValues(k), ['after']);
    });

    it('reads a key with no live value with no items', async () => {
      const k = key('orphan');
      await store().apply([appended(k, [item(3, 'alone')])]);
      assert.equal(await read(k), undefined);
    });

    it('lets an append refresh a key live when it was appended: never shorten its expiry nor revive an expired key', async () => {
      // Versions as a clock mints them (epoch ms * LOGICAL_SLOTS): liveness is judged at the item's time.
      const now = Date.now() * LOGICAL_SLOTS;
      const soon = Date.now() + 60_000;
      const later = Date.now() + 3_600_000;
      const k = key('refresh');
      await store().apply([put(k, now, 'v', soon), appended(k, [item(now + 1, 'i')], later)]);
      assert.equal((await read(k))?.expiresAt, later);
      await store().apply([appended(k, [item(now + 2, 'j')], soon)]);
      assert.equal((await read(k))?.expiresAt, later);

      const gone = key('expired');
      await store().apply([put(gone, now - 5_000 * LOGICAL_SLOTS, 'v', Date.now() - 1_000)]);
      await store().apply([appended(gone, [item(now + 3, 'i')], later)]);
      assert.equal(await read(gone), undefined);
    });

    it('cleanup removes the items of expired and deleted keys with them, and keeps live ones', async () => {
      const storage = store();
      if (!storage.cleanup) return;
      const expired = key('cleanup-expired');
      const deleted = key('cleanup-deleted');
      const live = key('cleanup-live');
      const now = Date.now() * LOGICAL_SLOTS;
      await store().apply([
        put(expired, 1, 'v', Date.now() - 1_000),
        appended(expired, [item(now, 'e')]),
        put(deleted, 1, 'v'),
        appended(deleted, [item(2, 'd')]),
        tombstone(deleted, 3),
        appended(deleted, [item(4, 'after-delete')]),
        put(live, 1, 'v'),
        appended(live, [item(2, 'l')]),
      ]);
      await storage.cleanup();
      // A value written again later must not find the removed items.
      await store().apply([put(expired, now + 5, 'w'), put(deleted, 5, 'w')]);
      assert.deepEqual(await itemValues(expired), []);
      assert.deepEqual(await itemValues(deleted), []);
      assert.deepEqual(await itemValues(live), ['l']);
    });

    describeLogFloor({ store, key, read }, it);

    it('counts item versions in the high-water mark', async () => {
      const k = key('hwm');
      const version = (await store().highWaterMark()) + 1_000_000;
      await store().apply([appended(k, [item(version, 'i')])]);
      assert.ok((await store().highWaterMark()) >= version);
    });
  });
}
