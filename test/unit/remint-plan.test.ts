import { describe, expect, it } from 'vitest';
import type { VersionedWrite } from '../../src/storage/types.js';
import { applyRemints, planRemints } from '../../src/sync/remint-plan.js';

function counter(start: number) {
  let next = start;
  return () => next++;
}
const item = (version: number) => ({ id: `i${version}`, version, json: `${version}` });
const appendOf = (key: string, versions: number[]): VersionedWrite => ({
  key,
  version: Math.max(...versions),
  json: null,
  expiresAt: null,
  appendedAt: 0,
  items: versions.map(item),
});

describe('planRemints', () => {
  it('leaves keys with no unanchored write alone', () => {
    const writes = [appendOf('a', [5, 6]), { key: 'a', version: 7, json: '1', expiresAt: null }];
    expect(planRemints(writes, () => false, counter(100))).toEqual([]);
  });

  it("re-mints all of a key's writes in the order they were written, items and value alike", () => {
    // Item 3 appended before the value 4, item 5 after; only the value was unanchored.
    const writes: VersionedWrite[] = [
      appendOf('a', [3, 5]),
      { key: 'a', version: 4, json: '1', expiresAt: null },
    ];
    const changes = planRemints(writes, (v) => v === 4, counter(100));
    expect(changes.map((c) => [c.from, c.to, c.itemId])).toEqual([
      [3, 100, 'i3'],
      [4, 101, undefined],
      [5, 102, 'i5'],
    ]);
    applyRemints(writes, changes);
    expect(writes[0]?.items?.map((i) => i.version)).toEqual([100, 102]);
    expect(writes[0]?.version).toBe(102);
    expect(writes[1]?.version).toBe(101);
  });

  it('moves the end of the items a value ends to just below the first write after it', () => {
    // Deleted at 1, item 2 appended to the absent key, set at 3 (ends items up to 2), item 4 after.
    const value: VersionedWrite = { key: 'a', version: 3, json: '1', expiresAt: null, endsLogAt: 2 };
    const writes: VersionedWrite[] = [appendOf('a', [2, 4]), value];
    const changes = planRemints(writes, () => true, counter(100));
    applyRemints(writes, changes);
    expect(value.version).toBe(101);
    expect(value.endsLogAt).toBe(100); // item 2 (now 100) still ends with the delete; item 4 (102) stays
    expect(writes[0]?.items?.map((i) => i.version)).toEqual([100, 102]);
  });

  it('ends every older stored item when the delete it replaced is no longer among the writes', () => {
    // The delete at 1 was coalesced into the value at 2; a stored item at 50 (anchored) must still go.
    const value: VersionedWrite = { key: 'a', version: 2, json: '1', expiresAt: null, endsLogAt: 1 };
    const changes = planRemints([value], () => true, counter(100));
    applyRemints([value], changes);
    expect(value).toMatchObject({ version: 100, endsLogAt: 99 });
  });

  it('re-mints each key on its own', () => {
    const writes: VersionedWrite[] = [
      { key: 'a', version: 1, json: '1', expiresAt: null },
      { key: 'b', version: 2, json: '2', expiresAt: null },
    ];
    const changes = planRemints(writes, (v) => v === 2, counter(100));
    expect(changes).toEqual([{ key: 'b', from: 2, to: 100 }]);
  });
});
