import assert from 'node:assert/strict';
import type { FeedChange, FeedPage, FeedReadOptions, Storage } from '../storage/contract/types.js';
import { describeFeedOrigin } from './feed-origin-contract.js';
import { type ContractSetup, contractFixture, type TestFunctions } from './storage-contract.js';
import { appended, item, put, tombstone } from './writes.js';

/** What the feed tests need from the suite that registers them. */
export interface FeedFixture {
  store: () => Storage;
  key: (label: string) => string;
  /** Whether the store honours `skipOrigin` (see `ContractSetup.skipsOrigin`); default true. */
  skipsOrigin?: () => boolean;
}

export type Feed = (after: string | null, opts?: FeedReadOptions) => Promise<FeedPage>;

/**
 * The change feed (`Storage.changes`): every applied write after a cursor, in commit order, with
 * the store's epoch. Registered inside `describeStorageContract`, so every adapter with a feed
 * checks it. The store may hold other data and serve other tests, so each test looks only at the
 * changes of its own fresh keys and never assumes the feed is otherwise quiet.
 *
 * The adapter is opened by the suite's `beforeAll`, after the tests are registered, so whether it
 * has a feed is only known inside each test: an adapter without `changes` (a store that cannot be
 * shared by several caches) passes these tests without checking anything. Once it gains
 * `changes`, they check it with no change to its test file.
 */
export function describeFeed(
  { store, key, skipsOrigin = () => true }: FeedFixture,
  { it }: Pick<TestFunctions, 'it'>,
): void {
  const feedOf = (): Feed | undefined => {
    const storage = store();
    return storage.changes?.bind(storage);
  };

  /** Every change after `cursor`, page by page, until the head. */
  const drain = async (feed: Feed, cursor: string, opts?: FeedReadOptions) => {
    const limit = opts?.limit;
    const changes: FeedChange[] = [];
    const pages: FeedPage[] = [];
    for (;;) {
      const page = await feed(cursor, opts);
      assert.equal(page.reset, false, 'a cursor the store just gave must not be reset');
      if (limit !== undefined) assert.ok(page.changes.length <= limit);
      pages.push(page);
      changes.push(...page.changes);
      cursor = page.cursor;
      if (!page.more) return { changes, pages, cursor };
    }
  };
  /**
   * The changes of `keys`, each once, in the order first delivered. The feed is at least once: a
   * change delivered again is allowed, so these tests see past repeats; the adapters' own tests
   * check that theirs deliver each once.
   */
  const mine = (changes: FeedChange[], ...keys: string[]) => {
    const seen = new Set<string>();
    return changes.filter((c) => {
      const id = JSON.stringify([c.key, c.version, c.itemId]);
      if (!keys.includes(c.key) || seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  };
  /** `mine`, less the changes already read before. */
  const news = (changes: FeedChange[], before: FeedChange[], ...keys: string[]) => {
    const old = new Set(before.map((c) => JSON.stringify([c.key, c.version, c.itemId])));
    return mine(changes, ...keys).filter((c) => !old.has(JSON.stringify([c.key, c.version, c.itemId])));
  };

  it('lists the writes after the head in commit order, each with its key and version', async () => {
    const feed = feedOf();
    if (!feed) return;
    const [a, b] = [key('feed-a'), key('feed-b')];
    const head = await feed(null);
    assert.deepEqual(head.changes, []);
    assert.equal(head.reset, false);
    assert.equal(head.more, false);
    await store().apply([put(a, 10, 'a1')]);
    await store().apply([put(b, 20, 'b1'), tombstone(a, 30)]);
    await store().apply([put(b, 40, 'b2')]);
    const { changes, cursor } = await drain(feed, head.cursor);
    assert.deepEqual(mine(changes, a, b), [
      { key: a, version: 10 },
      { key: b, version: 20 },
      { key: a, version: 30 },
      { key: b, version: 40 },
    ]);
    // Read from where it ended, the feed has nothing new of these keys.
    assert.deepEqual(news((await drain(feed, cursor)).changes, changes, a, b), []);
  });

  it('lists no change for a write the store refused as stale', async () => {
    const feed = feedOf();
    if (!feed) return;
    const k = key('feed-stale');
    const head = await feed(null);
    await store().apply([put(k, 50, 'current')]);
    const before = await drain(feed, head.cursor);
    assert.deepEqual(mine(before.changes, k), [{ key: k, version: 50 }]);
    const results = await store().apply([put(k, 40, 'older'), put(k, 50, 'current')]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['stale', 'stale'],
    );
    await store().apply([put(k, 60, 'newer')]);
    const after = (await drain(feed, before.cursor)).changes;
    assert.deepEqual(news(after, before.changes, k), [{ key: k, version: 60 }]);
    assert.equal(
      after.some((c) => c.key === k && c.version === 40),
      false,
    );
  });

  it('lists an append with the newest stored item, and nothing for a re-sent one', async () => {
    const feed = feedOf();
    if (!feed) return;
    const k = key('feed-append');
    const head = await feed(null);
    await store().apply([put(k, 10, { header: true })]);
    const [x, y, z] = [item(20, 'x'), item(30, 'y'), item(40, 'z')];
    await store().apply([appended(k, [y, x])]);
    // Re-sent: nothing new is stored (had it been recorded, as its newest item x, it would show).
    await store().apply([appended(k, [x])]);
    await store().apply([appended(k, [x, y])]);
    await store().apply([appended(k, [x, y, z])]);
    assert.deepEqual(mine((await drain(feed, head.cursor)).changes, k), [
      { key: k, version: 10 },
      { key: k, version: 30, itemId: y.id },
      { key: k, version: 40, itemId: z.id },
    ]);
  });

  it('pages with `limit`, saying `more` until the last page, and skips or repeats nothing', async () => {
    const feed = feedOf();
    if (!feed) return;
    const keys = Array.from({ length: 7 }, (_, i) => key(`feed-page-${i}`));
    const { cursor } = await drain(feed, (await feed(null)).cursor);
    for (const [i, k] of keys.entries()) await store().apply([put(k, 100 + i, i)]);
    const { changes, pages } = await drain(feed, cursor, { limit: 3 });
    assert.deepEqual(
      mine(changes, ...keys),
      keys.map((k, i) => ({ key: k, version: 100 + i })),
    );
    assert.ok(pages.length >= 3, 'seven changes in pages of three take three pages at least');
    for (const page of pages.slice(0, -1)) {
      assert.equal(page.more, true);
      assert.equal(page.changes.length, 3, 'a page followed by more is full');
    }
    assert.equal(pages.at(-1)?.more, false);
  });

  it('answers a cursor of another epoch, or garbage, with reset and a head to follow from', async () => {
    const feed = feedOf();
    if (!feed) return;
    const head = await feed(null);
    for (const cursor of [`other-${head.epoch}:1:1`, 'not a cursor', '', `${head.cursor}x`]) {
      const page = await feed(cursor);
      assert.equal(page.reset, true, `cursor ${JSON.stringify(cursor)} must be reset`);
      assert.deepEqual(page.changes, []);
      assert.equal(page.more, false);
      assert.equal(page.epoch, head.epoch);
      // The head it answers with is a cursor the store serves.
      const k = key('feed-after-reset');
      await store().apply([put(k, 7, 'seen')]);
      const { changes } = await drain(feed, page.cursor);
      assert.deepEqual(mine(changes, k), [{ key: k, version: 7 }]);
    }
  });

  it('keeps one epoch across calls and writes, and serves every cursor it handed out', async () => {
    const feed = feedOf();
    if (!feed) return;
    const first = await feed(null);
    assert.ok(first.epoch.length > 0);
    const k = key('feed-epoch');
    await store().apply([put(k, 1, 'one')]);
    const middle = await drain(feed, first.cursor);
    await store().apply([put(k, 2, 'two')]);
    const last = await feed(null);
    for (const page of [...middle.pages, last]) assert.equal(page.epoch, first.epoch);
    // An older cursor still reads the changes after it.
    assert.deepEqual(news((await drain(feed, middle.cursor)).changes, middle.changes, k), [
      { key: k, version: 2 },
    ]);
    assert.deepEqual(mine((await drain(feed, first.cursor)).changes, k), [
      { key: k, version: 1 },
      { key: k, version: 2 },
    ]);
  });

  it('honours an aborted signal', async () => {
    const feed = feedOf();
    if (!feed) return;
    const controller = new AbortController();
    controller.abort(new Error('caller gave up'));
    await assert.rejects(feed(null, { signal: controller.signal }));
  });

  describeFeedOrigin({ store, key, skipsOrigin, feedOf, drain, mine }, { it });
}

/**
 * Registers the change feed tests on their own, for an adapter opened by `setup` (they also run
 * inside `describeStorageContract`). Fresh keys per test, as there.
 */
export function describeFeedContract(
  name: string,
  setup: () => Promise<ContractSetup>,
  { describe, it, beforeAll, afterAll }: TestFunctions,
): void {
  describe(`Storage feed contract: ${name}`, () => {
    const { store, key, skipsOrigin } = contractFixture(setup, { beforeAll, afterAll });
    describeFeed({ store, key, skipsOrigin }, { it });
  });
}
