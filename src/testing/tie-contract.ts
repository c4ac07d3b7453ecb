import assert from 'node:assert/strict';
import type { Storage, StoredEntry } from '../storage/contract/types.js';
import type { TestFunctions } from './storage-contract.js';
import { put, tombstone } from './writes.js';

/** What the tie tests need from the suite that registers them. */
export interface TieFixture {
  store: () => Storage;
  key: (label: string) => string;
  read: (key: string) => Promise<StoredEntry | undefined>;
}

/**
 * Two writes of one key at exactly the same version (two processes minting it in the same
 * millisecond with the same counter): the first to arrive stays, and the second is told it lost,
 * apart from a re-sent write, which is told the store holds it (see `stale-answer.ts`). An adapter
 * that cannot tell the two apart leaves `storedDiffers` out (the cache then reads the store again),
 * but never says the wrong one. Registered inside `describeStorageContract`, so every adapter checks it.
 */
export function describeTies({ store, key, read }: TieFixture, { it }: Pick<TestFunctions, 'it'>): void {
  it('keeps the first of two different values at one version, telling the second it lost', async () => {
    const k = key('tie');
    assert.deepEqual(await store().apply([put(k, 7, 'first')]), [{ status: 'applied' }]);
    const [second] = await store().apply([put(k, 7, 'second')]);
    assert.equal(second?.status, 'stale');
    if (second?.status === 'stale') {
      if (second.storedVersion !== undefined) assert.equal(second.storedVersion, 7);
      assert.notEqual(
        second.storedDiffers,
        false,
        'a different write holds the version: storedDiffers must not be false',
      );
    }
    assert.equal(JSON.parse((await read(k))?.json ?? 'null'), 'first');
  });

  it('keeps a delete and a value at one version apart the same way: the first stays, the second lost', async () => {
    const k = key('tie-delete');
    await store().apply([tombstone(k, 9)]);
    const [value] = await store().apply([put(k, 9, 'after')]);
    assert.equal(value?.status, 'stale');
    if (value?.status === 'stale') assert.notEqual(value.storedDiffers, false);
    assert.deepEqual(await read(k), { version: 9, json: null, expiresAt: null });
    const v = key('tie-value');
    await store().apply([put(v, 9, 'before')]);
    const [deletion] = await store().apply([tombstone(v, 9)]);
    assert.equal(deletion?.status, 'stale');
    if (deletion?.status === 'stale') assert.notEqual(deletion.storedDiffers, false);
    assert.equal(JSON.parse((await read(v))?.json ?? 'null'), 'before');
  });

  it('tells a re-sent write at its own version that the store holds it, and changes nothing', async () => {
    for (const write of [put(key('resend'), 11, { n: 11 }), tombstone(key('resend-delete'), 11)]) {
      assert.deepEqual(await store().apply([write]), [{ status: 'applied' }]);
      const [again] = await store().apply([write]);
      assert.equal(again?.status, 'stale');
      if (again?.status === 'stale') {
        if (again.storedVersion !== undefined) assert.equal(again.storedVersion, 11);
        assert.notEqual(
          again.storedDiffers,
          true,
          'the store holds this very write: storedDiffers must not be true',
        );
      }
      const stored = (await read(write.key))?.json ?? null;
      assert.deepEqual(JSON.parse(stored ?? 'null'), JSON.parse(write.json ?? 'null'));
    }
  });
}
