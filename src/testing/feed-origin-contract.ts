import assert from 'node:assert/strict';
import type { FeedChange, FeedPage, FeedReadOptions, Storage } from '../storage/contract/types.js';
import type { Feed } from './feed-contract.js';
import type { TestFunctions } from './storage-contract.js';
import { appended, item, put } from './writes.js';

/** What the origin tests borrow from `describeFeed`. */
export interface FeedOriginFixture {
  store: () => Storage;
  key: (label: string) => string;
  skipsOrigin: () => boolean;
  feedOf: () => Feed | undefined;
  drain: (
    feed: Feed,
    cursor: string,
    opts?: FeedReadOptions,
  ) => Promise<{ changes: FeedChange[]; pages: FeedPage[]; cursor: string }>;
  mine: (changes: FeedChange[], ...keys: string[]) => FeedChange[];
}

/**
 * Origins (`ApplyOptions.origin`, `FeedReadOptions.skipOrigin`): a reader that skips an origin
 * gets every change but those written with it, and its cursor still moves past them. Both are
 * hints: an adapter that ignores them (`skipsOrigin` false) is only checked for delivering every
 * change and for pages that keep moving. Origins are fresh per test, as keys are, so other tests
 * writing to the same store never match them.
 */
export function describeFeedOrigin(
  { store, key, skipsOrigin, feedOf, drain, mine }: FeedOriginFixture,
  { it }: Pick<TestFunctions, 'it'>,
): void {
  const origin = (label: string) => key(`origin-${label}`);

  it('leaves out the changes written with the origin a read skips, values and appends alike', async () => {
    const feed = feedOf();
    if (!feed) return;
    const [a, b, c] = [key('origin-a'), key('origin-b'), key('origin-c')];
    const [x, y] = [origin('x'), origin('y')];
    const [older, newer] = [item(40, 'x-item'), item(50, 'y-item')];
    const head = await feed(null);
    await store().apply([put(a, 10, 'from x')], { origin: x });
    await store().apply([put(b, 20, 'from y')], { origin: y });
    await store().apply([put(c, 30, 'no origin')]);
    await store().apply([appended(a, [older])], { origin: x });
    await store().apply([appended(a, [newer])], { origin: y });
    const all = [
      { key: a, version: 10 },
      { key: b, version: 20 },
      { key: c, version: 30 },
      { key: a, version: 40, itemId: older.id },
      { key: a, version: 50, itemId: newer.id },
    ];
    const read = async (opts?: FeedReadOptions) =>
      mine((await drain(feed, head.cursor, opts)).changes, a, b, c);
    assert.deepEqual(await read(), all, 'a read that skips no origin gets every change');
    assert.deepEqual(
      await read({ skipOrigin: origin('z') }),
      all,
      'an origin nobody wrote with skips nothing',
    );
    const withoutX = skipsOrigin() ? all.filter((_, i) => i !== 0 && i !== 3) : all;
    assert.deepEqual(await read({ skipOrigin: x }), withoutX);
    const withoutY = skipsOrigin() ? all.filter((_, i) => i !== 1 && i !== 4) : all;
    assert.deepEqual(await read({ skipOrigin: y }), withoutY);
  });

  it('moves the cursor past skipped changes, page by page, and delivers a foreign change after them', async () => {
    const feed = feedOf();
    if (!feed) return;
    const own = origin('own');
    const keys = Array.from({ length: 5 }, (_, i) => key(`origin-own-${i}`));
    const foreign = key('origin-foreign');
    const start = await drain(feed, (await feed(null)).cursor);
    for (const [i, k] of keys.entries()) await store().apply([put(k, 100 + i, i)], { origin: own });
    const skipped = await drain(feed, start.cursor, { limit: 2, skipOrigin: own });
    const expected = skipsOrigin() ? [] : keys.map((k, i) => ({ key: k, version: 100 + i }));
    assert.deepEqual(mine(skipped.changes, ...keys), expected);
    // Five changes in pages of two: `more` counts the skipped ones, and every page moves on.
    assert.ok(skipped.pages.length >= 3, 'five changes in pages of two take three pages at least');
    const readWith = [start.cursor, ...skipped.pages.map((page) => page.cursor)];
    for (const [i, page] of skipped.pages.entries()) {
      assert.notEqual(page.cursor, readWith[i], 'a page of skipped changes still moves the cursor');
    }

    await store().apply([put(foreign, 200, 'foreign')], { origin: origin('other') });
    const after = await drain(feed, skipped.cursor, { skipOrigin: own });
    assert.deepEqual(mine(after.changes, foreign), [{ key: foreign, version: 200 }]);
    if (skipsOrigin()) assert.deepEqual(mine(after.changes, ...keys), []);
  });
}
