import assert from 'node:assert/strict';
import type { Storage, StoredEntry, ValueWrite } from '../storage/contract/types.js';
import type { TestFunctions } from './storage-contract.js';
import { appended, item, put, putWithLogFloor, tombstone } from './writes.js';

/** What the log floor tests need from the append suite that registers them. */
export interface LogFloorFixture {
  store: () => Storage;
  key: (label: string) => string;
  read: (key: string) => Promise<StoredEntry | undefined>;
}

/**
 * `ValueWrite.logFloor`: a value that starts a new log ends the key's older items in the same write,
 * exactly as far as the value itself is applied. Registered inside `describeAppendContract`, so
 * every adapter that runs that suite checks it.
 */
export function describeLogFloor({ store, key, read }: LogFloorFixture, it: TestFunctions['it']): void {
  const itemValues = async (k: string) => ((await read(k))?.items ?? []).map((i) => JSON.parse(i.json));
  /** A key holding a live value at 1 and items at 2, 3 and 5. */
  const withItems = async (label: string) => {
    const k = key(label);
    await store().apply([put(k, 1, 'v'), appended(k, [item(2, 'two'), item(3, 'three'), item(5, 'five')])]);
    return k;
  };

  it('a value with a log floor ends the items at or below it in the same write, and refuses late ones', async () => {
    const k = await withItems('floor');
    assert.deepEqual(await store().apply([putWithLogFloor(k, 10, 'again', 3)]), [{ status: 'applied' }]);
    assert.equal(JSON.parse((await read(k))?.json ?? 'null'), 'again');
    assert.deepEqual(await itemValues(k), ['five']);
    const late = await store().apply([appended(k, [item(3, 'late-at-the-floor')])]);
    assert.deepEqual(late[0], { status: 'stale', storedVersion: 10 });
    await store().apply([appended(k, [item(4, 'above'), item(11, 'after')])]);
    assert.deepEqual(await itemValues(k), ['above', 'five', 'after']);
  });

  it('a floor goes with its value only: a value refused as stale leaves the items alone', async () => {
    const k = await withItems('floor-stale');
    await store().apply([put(k, 20, 'newer')]);
    const [result] = await store().apply([putWithLogFloor(k, 10, 'older', 9)]);
    assert.deepEqual(result, { status: 'stale', storedVersion: 20 });
    assert.equal(JSON.parse((await read(k))?.json ?? 'null'), 'newer');
    assert.deepEqual(await itemValues(k), ['two', 'three', 'five']);
    assert.equal((await store().apply([appended(k, [item(6, 'six')])]))[0]?.status, 'applied');
  });

  it('re-sent, changes nothing more; reordered, never lowers the floor', async () => {
    const k = await withItems('floor-resent');
    const write = putWithLogFloor(k, 10, 'again', 4);
    await store().apply([write]);
    await store().apply([appended(k, [item(6, 'six')])]);
    assert.equal((await store().apply([write]))[0]?.status, 'stale');
    assert.deepEqual(await itemValues(k), ['five', 'six']);
    // A newer value with a lower floor (or none) keeps the floor where it is.
    assert.equal((await store().apply([putWithLogFloor(k, 12, 'newer', 2)]))[0]?.status, 'applied');
    assert.equal((await store().apply([appended(k, [item(4, 'below')])]))[0]?.status, 'stale');
    assert.deepEqual(await itemValues(k), ['five', 'six']);
  });

  it('a tombstone’s floor outlives the value written over it with a lower floor', async () => {
    const k = await withItems('floor-tombstone');
    await store().apply([tombstone(k, 8)]);
    await store().apply([putWithLogFloor(k, 10, 'again', 3)]);
    assert.equal((await store().apply([appended(k, [item(7, 'before-delete')])]))[0]?.status, 'stale');
    assert.deepEqual(await itemValues(k), []);
  });

  it('raises the floor of a key the store never saw, and ends items appended to it before', async () => {
    const k = key('floor-new-key');
    await store().apply([appended(k, [item(2, 'orphan'), item(9, 'kept')])]);
    assert.equal((await store().apply([putWithLogFloor(k, 8, 'first', 7)]))[0]?.status, 'applied');
    assert.deepEqual(await itemValues(k), ['kept']);
  });

  it('judges whether the value it replaces had expired at the time the write was made (writtenAt)', async () => {
    const expiredAt = Date.now() - 60_000;
    const live = key('floor-written-at');
    const late = key('floor-arrived-late');
    for (const k of [live, late]) {
      await store().apply([
        put(k, 1, 'v', expiredAt),
        appended(k, [item(2, 'two')], expiredAt, expiredAt - 1_000),
      ]);
    }
    // Made while 'v' was live, arriving after it expired: the log goes on.
    await store().apply([{ ...(put(live, 10, 'next') as ValueWrite), writtenAt: expiredAt - 500 }]);
    assert.deepEqual(await itemValues(live), ['two']);
    // Made after it expired: a new log.
    await store().apply([{ ...(put(late, 10, 'next') as ValueWrite), writtenAt: expiredAt + 500 }]);
    assert.deepEqual(await itemValues(late), []);
  });

  it('judges a value by the expiry an append before it in the same batch refreshed', async () => {
    const expiredAt = Date.now() - 60_000;
    const k = key('floor-refreshed-in-batch');
    await store().apply([put(k, 1, 'v', expiredAt)]);
    // Appended while 'v' was live, refreshing it past the time the next value was written.
    const refresh = appended(k, [item(2, 'two')], Date.now() + 60_000, expiredAt - 1_000);
    const next: ValueWrite = { ...(put(k, 3, 'next') as ValueWrite), writtenAt: expiredAt + 500 };
    const other = key('floor-refreshed-other');
    const results = await store().apply([refresh, put(other, 4, 'o'), next, appended(k, [item(5, 'five')])]);
    assert.deepEqual(results, [
      { status: 'applied' },
      { status: 'applied' },
      { status: 'applied' },
      { status: 'applied' },
    ]);
    assert.equal(JSON.parse((await read(k))?.json ?? 'null'), 'next');
    assert.deepEqual(await itemValues(k), ['two', 'five']);
    assert.equal(JSON.parse((await read(other))?.json ?? 'null'), 'o');
  });

  it('starts the new log over an ended value at the first write it coalesced (firstVersion)', async () => {
    const k = key('floor-first-version');
    await store().apply([put(k, 1, 'v'), tombstone(k, 3), appended(k, [item(5, 'five')])]);
    // The value at 4 that started the log never reached the store; the one at 10 replaced it.
    await store().apply([{ ...(put(k, 10, 'again') as ValueWrite), firstVersion: 4 }]);
    assert.deepEqual(await itemValues(k), ['five']);
    const without = key('floor-no-first-version');
    await store().apply([put(without, 1, 'v'), tombstone(without, 3), appended(without, [item(5, 'five')])]);
    await store().apply([put(without, 10, 'again')]);
    assert.deepEqual(await itemValues(without), []);
  });
}
